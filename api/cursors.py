"""Opaque keyset cursors of the list endpoints: one format for every list the API pages."""

from __future__ import annotations

import base64

from refunds.domain.errors import DomainError


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    http_status = 422
    param = "cursor"


# Ids are PostgreSQL bigints: a cursor past them was never one of ours.
MAX_ID = 2**63 - 1


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        last_id = int(value)
        if kind != "id" or not 0 <= last_id <= MAX_ID:
            raise ValueError(raw)
        return last_id
    except ValueError as exc:
        raise InvalidCursor("cursor is not one this API returned") from exc
