"""Engine and session factory: one async engine per process, psycopg 3."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# A pooled connection returned less than this long ago is handed out as it is; one idle longer is
# pinged first and replaced if the server dropped it (a restart, an idle timeout). A ping before
# every transaction was a round trip per ledger step (issue 11); HikariCP skips its check the same
# way. A server lost in the meantime fails the statement, and the step is retried.
PING_IF_IDLE_FOR = 1.0  # seconds
_RETURNED_AT = "returned_at"


def async_url(url: str) -> str:
    """Normalise any postgres URL to the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(
    url: str, pool_size: int = 10, ping_if_idle_for: float = PING_IF_IDLE_FOR
) -> AsyncEngine:
    # LIFO: the connection just returned is handed out next, so the ones in use stay fresh.
    engine = create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=20, pool_use_lifo=True
    )
    _ping_when_idle(engine, ping_if_idle_for)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_for: float) -> None:
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def handed_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        at = record.info.get(_RETURNED_AT)  # None: a new connection (`info` is per connection)
        if at is None or time.monotonic() - at < idle_for:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and hands out another (SQLAlchemy's contract).
            raise DisconnectionError("the server dropped this pooled connection") from exc

    event.listen(pool, "checkin", returned)
    event.listen(pool, "checkout", handed_out)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
