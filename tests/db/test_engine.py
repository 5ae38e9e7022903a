"""The pool's liveness check (issue 11): a connection in steady use is handed out without a
round trip; one that sat idle is pinged first, and replaced if the server dropped it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.engine import make_engine, make_sessionmaker

Sessions = async_sessionmaker[AsyncSession]


async def _backend(sessionmaker: Sessions) -> int:
    """One transaction; the server process that ran it."""
    async with sessionmaker.begin() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_used_a_moment_ago_is_not_pinged_one_idle_longer_is(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url, pool_size=1, ping_if_idle_for=0.3)
    dialect, pings = engine.sync_engine.dialect, []
    ping = dialect.do_ping

    def counted(connection: Any) -> bool:
        pings.append(connection)
        return ping(connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    try:
        sessions = make_sessionmaker(engine)
        first = await _backend(sessions)
        assert (await _backend(sessions), len(pings)) == (first, 0)  # in steady use
        await asyncio.sleep(0.4)
        assert (await _backend(sessions), len(pings)) == (first, 1)  # idle: pinged, alive
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced(
    database_url: str, sessionmaker: Sessions
) -> None:
    engine = make_engine(database_url, pool_size=1, ping_if_idle_for=0.2)
    try:
        sessions = make_sessionmaker(engine)
        dropped = await _backend(sessions)
        async with sessionmaker.begin() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        await asyncio.sleep(0.3)
        # No error reaches the step: the ping found the connection dead, the pool replaced it.
        assert await _backend(sessions) != dropped
    finally:
        await engine.dispose()
