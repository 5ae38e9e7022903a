"""The one-statement writes of a ledger step (issue 11): built once per shape, and safe to
combine (no bind parameter that SQLAlchemy would take for a column's value)."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql

from refunds.db.models import Base
from refunds.db.step_writes import _PARTS, EVENT, _statement

EVERY_PART = (*_PARTS, EVENT)


def test_no_bind_parameter_is_named_like_a_column_of_any_table() -> None:
    # An UPDATE takes an execution parameter named like one of its table's columns for a new
    # value of that column: `coupon_code` once turned up in the order's money update.
    columns = {c.name for table in Base.metadata.tables.values() for c in table.columns}
    compiled = _statement(EVERY_PART).compile(dialect=postgresql.psycopg.dialect())
    named = {name for name in compiled.binds if not name.startswith(("param_", "%("))}
    assert named, "the statement binds its values by name"
    assert named & columns == set()


def test_every_shape_is_built_once_and_compiled_once() -> None:
    shape = ("timeline", "move", EVENT)
    assert _statement(shape) is _statement(tuple(shape))
    # SQLAlchemy caches a compiled statement by its cache key; one without a key (a many-row
    # VALUES list) is compiled at every execution.
    for name in EVERY_PART:
        assert _statement((name,))._generate_cache_key() is not None, name
    assert _statement(EVERY_PART)._generate_cache_key() is not None
