"""Secrets the database must hold in a usable form (the shops' webhook signing secrets) are
sealed with the payload keys: AES-256-GCM, the key id in the stored text, the column's purpose
as associated data, so a copy of the database, a backup or a console over it reveals none.

The keys are the process's (`configure_sealing`, called where the engine is made, from
`REFUNDS_PAYLOAD_KEYS`): the first key of the process's first configuration seals, any key
configured opens (a process configures once; the tests' one process configures the key its
stack shares first). A value stored before sealing (no prefix) is read as it is and sealed at
its next write (a rotation).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String
from sqlalchemy.types import TypeDecorator

PREFIX = "sealed:v1:"
NONCE_BYTES = 12
_ciphers: dict[str, AESGCM] = {}
_sealing: list[str] = []


class SealingError(RuntimeError):
    """No key to seal with, or a sealed value no configured key opens."""


def configure_sealing(keys: Sequence[tuple[str, bytes]]) -> None:
    """Keys of this process, the sealing one first: (key id, 32 bytes)."""
    for kid, secret in keys:
        _ciphers.setdefault(kid, AESGCM(secret))
    if keys and not _sealing:
        _sealing.append(keys[0][0])


def seal(plain: str, purpose: bytes) -> str:
    if not _sealing:
        raise SealingError("no payload key configured: a secret is never stored in clear")
    kid = _sealing[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = _ciphers[kid].encrypt(nonce, plain.encode(), purpose)
    return f"{PREFIX}{kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(stored: str, purpose: bytes) -> str:
    if not stored.startswith(PREFIX):
        return stored  # stored before sealing
    kid, _, text = stored[len(PREFIX) :].partition(":")
    cipher = _ciphers.get(kid)
    if cipher is None:
        raise SealingError(f"a secret sealed with key {kid!r}, which is not configured")
    raw = base64.urlsafe_b64decode(text)
    return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose).decode()


class SealedString(TypeDecorator[str]):
    """A string column whose value is sealed in the database and plain in Python."""

    impl = String(512)
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose.encode()

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else seal(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else unseal(value, self.purpose)
