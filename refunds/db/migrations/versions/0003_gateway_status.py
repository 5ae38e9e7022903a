"""gateway status: the last gateway status that was news for a refund, and what was done with
each notification, so only news is signalled to a workflow (issue 11)

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from domain/: a migration is a snapshot of the schema at its
# revision. A new GatewayStatus or NotificationOutcome needs a new migration (tests/db checks).
GATEWAY_STATUSES = "'processing','succeeded','failed','abnormal'"
OUTCOMES = "'reopened','repaired','signalled','ignored','recorded','duplicate','not_ours'"


def upgrade() -> None:
    # Nullable, no default: none is "the gateway has said nothing yet", and PostgreSQL adds
    # such a column without rewriting the table.
    op.add_column("refunds", sa.Column("gateway_status", sa.String(length=16), nullable=True))
    op.create_check_constraint(
        op.f("ck_refunds_gateway_status"), "refunds", f"gateway_status IN ({GATEWAY_STATUSES})"
    )
    # A constant default fills the existing rows without a rewrite either (PostgreSQL >= 11).
    # Before this revision every notification about a refund of ours was signalled; those about
    # none read 'signalled' too: no backfill, which would hold the webhooks' table locked while
    # it scans every row.
    op.add_column(
        "gateway_notifications",
        sa.Column(
            "outcome",
            sa.String(length=16),
            server_default=sa.text("'signalled'"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_gateway_notifications_outcome"),
        "gateway_notifications",
        f"outcome IN ({OUTCOMES})",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_gateway_notifications_outcome"), "gateway_notifications", type_="check"
    )
    op.drop_column("gateway_notifications", "outcome")
    op.drop_constraint(op.f("ck_refunds_gateway_status"), "refunds", type_="check")
    op.drop_column("refunds", "gateway_status")
