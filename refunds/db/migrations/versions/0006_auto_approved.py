"""refunds.auto_approved: the auto-approval policy's decision, summed per order and per
requester per day

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "refunds",
        sa.Column("auto_approved", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    # Refunds approved by policy before the column: their timelines say so.
    op.execute(
        "UPDATE refunds SET auto_approved = true WHERE EXISTS (SELECT 1 FROM refund_events e"
        " WHERE e.refund_no = refunds.refund_no AND e.actor = 'policy'"
        " AND e.event = 'auto_approved')"
    )
    op.create_index(
        op.f("ix_refunds_auto_approved_requester"),
        "refunds",
        ["requested_by", "currency", "created_at"],
        postgresql_where=sa.text("auto_approved"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_refunds_auto_approved_requester"), table_name="refunds")
    op.drop_column("refunds", "auto_approved")
