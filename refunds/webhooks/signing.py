"""`Refunds-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`: HMAC-SHA256 of `f"{t}.{body}"`
under each secret that is valid now (two during a rotation's overlap). README has a receiver's
verification in Python."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

HEADER = "Refunds-Signature"
SCHEME = "v1"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    parts = [f"t={timestamp}"] + [f"{SCHEME}={sign(s, timestamp, body)}" for s in signing_secrets]
    return ",".join(parts)


def verify(
    header: str, body: bytes, secret: str, tolerance: float = 300, now: float | None = None
) -> bool:
    """What a receiver does: any v1 matches, and the timestamp is recent (no replays)."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in fields if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, v) for k, v in fields if k == SCHEME)
