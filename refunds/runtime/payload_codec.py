"""Temporal payloads encrypted at rest: what a refund carries (reasons, who asked, decision and
resolution notes, payment references) is readable only by a process holding a payload key.

AES-256-GCM as Temporal's own encryption sample does it: each payload's serialized bytes are
sealed under a fresh 96-bit nonce, the key's id rides in the payload's metadata
(`encryption-key-id`), the encoding becomes `binary/encrypted`. Several keys make a rotation:
the first encrypts, any decrypts by its id. A payload that is not encrypted (a history written
before the codec, a search attribute) passes through unchanged, so old runs still replay.

The codec takes no serialization context: the same bytes whatever workflow or activity they
belong to, which keeps `refunds.runtime.workflow_runner`'s context-free sandbox valid.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
# A key id is written into every payload and read back to pick the key: a short plain token.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PayloadKeyError(ValueError):
    """The payload keys setting cannot be read, or a payload names a key this process lacks."""


@dataclass(frozen=True)
class PayloadKey:
    id: str
    secret: bytes  # 32 bytes: AES-256

    def __repr__(self) -> str:  # never the key in a log line or a traceback
        return f"PayloadKey(id={self.id!r})"


def parse_payload_keys(raw: str) -> tuple[PayloadKey, ...]:
    """`kid1:base64key,kid2:base64key` (standard or URL-safe base64 of 32 bytes); the first
    key encrypts. Refused whole when any part is wrong: a key silently dropped is data lost."""
    keys: list[PayloadKey] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        kid = kid.strip()
        if not sep or not _KEY_ID.fullmatch(kid):
            raise PayloadKeyError("each payload key is KEY_ID:BASE64 (id of [A-Za-z0-9._-])")
        keys.append(PayloadKey(kid, _key_bytes(kid, encoded.strip())))
    if not keys:
        raise PayloadKeyError("no payload key given")
    if len({k.id for k in keys}) != len(keys):
        raise PayloadKeyError("payload key ids must be distinct")
    return tuple(keys)


def _key_bytes(kid: str, encoded: str) -> bytes:
    text = encoded.replace("+", "-").replace("/", "_").rstrip("=")
    try:
        secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PayloadKeyError(f"payload key {kid} is not base64") from None
    if len(secret) != 32:
        raise PayloadKeyError(f"payload key {kid} must be 32 bytes (AES-256), not {len(secret)}")
    return secret


def new_key_text() -> str:
    """A fresh key as the setting writes it (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key, decrypts with whichever key a payload names."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise PayloadKeyError("no payload key given")
        self._encrypting = keys[0]
        self._ciphers = {k.id: AESGCM(k.secret) for k in keys}

    @property
    def key_id(self) -> str:
        return self._encrypting.id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._encrypting.id].encrypt(
            nonce, payload.SerializeToString(), None
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._encrypting.id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec, or never meant for it
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadKeyError(f"payload encrypted with key {kid!r}, which is not configured")
        plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every `Payload` inside a proto message (a history event, a whole history), depth first:
    inputs, results, failures' details, headers, memos, search attributes, summaries."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        # A message field, a repeated one, or a map (whose values may be messages).
        if isinstance(value, Message):
            items = [value]
        else:
            items = list(value.values()) if hasattr(value, "values") else list(value)
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


def transform_payloads(message: Message, change: Callable[[Payload], Payload]) -> None:
    """Replace, in place, every payload in `message` by what `change` makes of it."""
    for payload in list(payloads_in(message)):
        payload.CopyFrom(change(payload))
