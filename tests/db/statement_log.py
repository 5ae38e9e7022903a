"""Every round trip an engine makes to PostgreSQL, by the activity that made it: what the
worker's database work per refund is counted and pinned with (issue 11)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

OUTSIDE = "(no activity)"
PING = "ping"


def _who() -> str:
    return activity.info().activity_type if activity.in_activity() else OUTSIDE


def label(sql: str) -> str:
    """A statement in a few words: `SELECT refunds FOR UPDATE`, `UPDATE orders`,
    `WITH move, timeline, event: INSERT event_deliveries`."""
    if sql in ("BEGIN", "COMMIT", "ROLLBACK", PING):
        return sql
    writes = re.findall(r"(INSERT INTO|UPDATE) (?!SET\b)(\w+)", sql)
    if sql.startswith("WITH "):
        parts = re.findall(r"(\w+) AS \((?:INSERT|UPDATE|SELECT|DELETE)", sql)
        verb, table = writes[-1]  # the main statement comes after its parts
        return f"WITH {', '.join(parts)}: {verb.split()[0]} {table}"
    if sql.startswith("SELECT (SELECT"):
        return "SELECT restore facts"
    verb = sql.split()[0]
    if verb == "SELECT":
        tables = re.findall(r" FROM (\w+)", sql)  # the last: after any subquery's
        locked = " FOR UPDATE" if sql.endswith("FOR UPDATE") or " FOR UPDATE OF " in sql else ""
        return f"SELECT {tables[-1] if tables else ''}{locked}"
    return f"{verb} {writes[0][1]}" if writes else verb


class StatementLog:
    """The SQL sent, in order, with BEGIN and COMMIT/ROLLBACK where the driver sends them (each
    its own round trip, which SQLAlchemy's cursor events do not show) and the pool's pings."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (activity type, SQL)

    def clear(self) -> None:
        self.sent.clear()

    def of(self, activity_type: str | None = None) -> list[str]:
        return [sql for who, sql in self.sent if activity_type in (None, who)]

    def labels(self, activity_type: str | None = None, *, pings: bool = False) -> list[str]:
        """What was sent, in a few words each; the pool's pings (an engine setting, not the
        step's) left out unless asked for."""
        return [label(sql) for sql in self.of(activity_type) if pings or sql != PING]

    def _sent(self, sql: str) -> None:
        self.sent.append((_who(), " ".join(sql.split())))

    def _cursor(self, conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        self._sent(sql)

    def _begin(self, conn: Any) -> None:
        self._sent("BEGIN")

    def _commit(self, conn: Any) -> None:
        self._sent("COMMIT")

    def _rollback(self, conn: Any) -> None:
        self._sent("ROLLBACK")

    @contextmanager
    def on(self, engine: AsyncEngine) -> Iterator[StatementLog]:
        """Listen to `engine` while the block runs."""
        sync = engine.sync_engine
        hooks: list[tuple[Any, str, Callable[..., Any]]] = [
            (sync, "before_cursor_execute", self._cursor),
            (sync, "begin", self._begin),
            (sync, "commit", self._commit),
            (sync, "rollback", self._rollback),
        ]
        for target, name, fn in hooks:
            event.listen(target, name, fn)
        dialect = sync.dialect
        ping = dialect.do_ping  # the pool's liveness check, on the raw connection: no events

        def counted(connection: Any) -> bool:
            self._sent(PING)
            return ping(connection)

        setattr(dialect, "do_ping", counted)  # noqa: B010 - a method swapped on one instance
        try:
            yield self
        finally:
            del dialect.do_ping
            for target, name, fn in hooks:
                event.remove(target, name, fn)
