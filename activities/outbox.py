"""The transaction of a step that may write outgoing events (issue 13), and the wake-up of the
endpoints' delivery workflows after it commits.

The events are in the database the moment the change is: the wake-up only saves the delivery
workflow its sweep's wait. A crash between the commit and the wake-up loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.outbox import woken

log = logging.getLogger("refunds.outbox")


class Relay(Protocol):
    async def wake(self, endpoint_ids: Collection[int]) -> None: ...


@asynccontextmanager
async def outbox_transaction(
    sessionmaker: async_sessionmaker[AsyncSession], relay: Relay | None
) -> AsyncIterator[AsyncSession]:
    """`sessionmaker.begin()`, then the wake-up of every endpoint that got a delivery."""
    async with sessionmaker.begin() as session:
        yield session
    endpoints = woken(session)
    if endpoints and relay is not None:
        try:
            await relay.wake(endpoints)
        except Exception as exc:  # the sweep delivers it: a failed wake-up fails nothing
            log.warning("webhook_wake_failed", extra={"error": type(exc).__name__})
