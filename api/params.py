"""Bounded query parameters: each one a strict pattern with a size bound, checked by FastAPI
before a handler runs, so no parameter reaches arithmetic (`Decimal`, `int`) or a database query
unbounded. `Decimal("1e999996")` scaled to minor units works for tens of seconds on the event
loop, during which every other request waits: a pattern is linear in a bounded length."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# An amount in major units as a person types it: up to 15 whole digits (beyond any amount a
# bigint of minor units holds once scaled) and 4 decimals (KWD has 3); no exponent, no sign;
# ASCII digits only (`\d` takes any script's).
MAJOR_AMOUNT = r"^[0-9]{1,15}(\.[0-9]{1,4})?$"
OPTIONAL_MAJOR_AMOUNT = r"^([0-9]{1,15}(\.[0-9]{1,4})?)?$"
# What `api.cursors.encode_cursor` writes: urlsafe base64 of `id:<bigint>`, unpadded.
CURSOR = r"^[A-Za-z0-9_-]{1,64}$"
# A refund_no or order_no as typed into a search box (printable ASCII, spaces around allowed).
SEARCH_KEY = r"^ *[!-~]{0,64} *$"
# A console path to go back to after sign-in: printable ASCII only, `safe_next` judges it.
NEXT_PATH = r"^[!-~]{0,2000}$"
REFUND_NO = r"^[!-~]{1,64}$"

Cursor = Annotated[str | None, Query(max_length=64, pattern=CURSOR)]
MajorAmount = Annotated[str, Query(max_length=20, pattern=OPTIONAL_MAJOR_AMOUNT)]
SearchKey = Annotated[str, Query(max_length=80, pattern=SEARCH_KEY)]
NextPath = Annotated[str, Query(max_length=2000, pattern=NEXT_PATH)]
RefundNoFilter = Annotated[str | None, Query(max_length=64, pattern=REFUND_NO)]
