"""orders: one order per payment (channel, payment_ref); NULL (a pending order) repeats freely

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-10 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_orders_channel_payment_ref"


def upgrade() -> None:
    # Two orders on one payment would each refund it in full: which one is real is a question
    # for people, so the migration stops and names them rather than pick one.
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT channel, payment_ref, string_agg(order_no, ', ' ORDER BY id) FROM orders "
                "WHERE payment_ref IS NOT NULL GROUP BY channel, payment_ref HAVING count(*) > 1 "
                "LIMIT 20"
            )
        )
        .all()
    )
    if shared:
        listed = "; ".join(f"{c} {p}: {orders}" for c, p, orders in shared)
        raise RuntimeError(f"orders share a payment, resolve them before migrating: {listed}")
    op.create_unique_constraint(NAME, "orders", ["channel", "payment_ref"])


def downgrade() -> None:
    op.drop_constraint(NAME, "orders", type_="unique")
