"""The refund routes only read, outside any transaction (issue 11: CPU per refund): no BEGIN, and
no ROLLBACK, after which psycopg drops the connection's prepared statements (DEALLOCATE ALL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from api.deps import get_read_session, get_session
from api.main import create_app
from tests.stack import Stack


@pytest_asyncio.fixture
async def app(stack: Stack) -> AsyncIterator[FastAPI]:
    app = create_app(stack.settings)
    async with app.router.lifespan_context(app):
        yield app


async def status_after_a_read(
    app: FastAPI, dependency: Callable[[Request], AsyncIterator[AsyncSession]]
) -> tuple[TransactionStatus, Any]:
    """The connection's transaction status once the session has read, and the pooled psycopg
    connection it read on."""
    sessions = dependency(Request({"type": "http", "app": app}))
    session = await anext(sessions)
    assert await session.scalar(text("SELECT count(*) FROM refunds")) is not None
    raw = await (await session.connection()).get_raw_connection()
    psycopg_connection = raw.driver_connection
    assert psycopg_connection is not None
    status = psycopg_connection.info.transaction_status
    with pytest.raises(StopAsyncIteration):  # the dependency's exit: the session closes
        await anext(sessions)
    return status, psycopg_connection


async def test_a_read_session_reads_outside_a_transaction_and_gives_its_connection_back_as_it_was(
    app: FastAPI,
) -> None:
    status, connection = await status_after_a_read(app, get_read_session)
    assert status == TransactionStatus.IDLE  # no BEGIN was sent, so no ROLLBACK will be
    assert connection.autocommit is False  # back in the pool for sessions that write


async def test_a_session_that_may_write_reads_inside_its_transaction(app: FastAPI) -> None:
    status, _ = await status_after_a_read(app, get_session)
    assert status == TransactionStatus.INTRANS
