"""One order per payment, held by the database: a unique (channel, payment_ref), with NULLs
(pending orders) free to repeat; migration 0008 stops on orders that already share a payment
rather than pick one of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from psycopg import sql
from sqlalchemy.engine import make_url

from refunds.db.migrate import alembic_config

INSERT = (
    "INSERT INTO orders (order_no, user_id, channel, currency, total_amount, paid_amount,"
    " payment_ref, points_used, fulfillment, status, refunded_amount, reserved_amount)"
    " VALUES (%s, 'u', %s, 'USD', 100, 100, %s, 0, 'unfulfilled', %s, 0, 0)"
)


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[str]:
    admin = make_url(database_url).set(drivername="postgresql")
    name = f"mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_second_order_on_a_payment_of_the_channel_is_refused_by_the_database(
    fresh_db: str,
) -> None:
    command.upgrade(alembic_config(fresh_db), "head")
    with psycopg.connect(fresh_db, autocommit=True) as db:
        db.execute(INSERT, ("O-1", "stripe", "pi_1", "paid"))
        db.execute(INSERT, ("O-2", "wechatpay", "pi_1", "paid"))  # another channel's namespace
        db.execute(INSERT, ("O-3", "stripe", None, "pending"))
        db.execute(INSERT, ("O-4", "stripe", None, "pending"))  # NULLs do not collide
        with pytest.raises(psycopg.errors.UniqueViolation, match="uq_orders_channel_payment_ref"):
            db.execute(INSERT, ("O-5", "stripe", "pi_1", "paid"))
        (count,) = db.execute("SELECT count(*) FROM orders").fetchone() or (0,)
    assert count == 4


def test_migration_0008_names_orders_sharing_a_payment_and_changes_nothing(fresh_db: str) -> None:
    config = alembic_config(fresh_db)
    command.upgrade(config, "0007")
    with psycopg.connect(fresh_db, autocommit=True) as db:
        db.execute(INSERT, ("O-a", "stripe", "pi_shared", "paid"))
        db.execute(INSERT, ("O-b", "stripe", "pi_shared", "paid"))
    with pytest.raises(RuntimeError, match=r"stripe pi_shared: O-a, O-b"):
        command.upgrade(config, "head")
    with psycopg.connect(fresh_db) as db:
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
    assert version == "0007"
    with psycopg.connect(fresh_db, autocommit=True) as db:
        db.execute("UPDATE orders SET payment_ref = 'pi_other' WHERE order_no = 'O-b'")
    command.upgrade(config, "head")
    command.downgrade(config, "0007")
    command.upgrade(config, "head")
