"""reconciliations: runs of the daily ledger-against-gateways check and their findings (issue 9)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from domain/: a migration is a snapshot of the schema at its
# revision. A new FindingKind or Channel needs a new migration (tests/db checks they agree).
FINDING_KINDS = "'gateway_succeeded','gateway_failed','mismatch','repaired','overdue'"
CHANNELS = "'stripe','wechatpay'"


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("run_key", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "window_start <= window_end", name=op.f("ck_reconciliations_window_ordered")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
        sa.UniqueConstraint("run_key", name=op.f("uq_reconciliations_run_key")),
    )
    op.create_table(
        "reconciliation_findings",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("reconciliation_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("refund_no", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            f"kind IN ({FINDING_KINDS})", name=op.f("ck_reconciliation_findings_kind")
        ),
        sa.CheckConstraint(
            f"channel IN ({CHANNELS})", name=op.f("ck_reconciliation_findings_channel")
        ),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["reconciliations.id"],
            name=op.f("fk_reconciliation_findings_reconciliation_id_reconciliations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_findings")),
        sa.UniqueConstraint(
            "reconciliation_id",
            "kind",
            "subject",
            name=op.f("uq_reconciliation_findings_reconciliation_id"),
        ),
    )
    op.create_index(
        "ix_reconciliation_findings_reconciliation_id_id",
        "reconciliation_findings",
        ["reconciliation_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_reconciliation_findings_reconciliation_id_id", table_name="reconciliation_findings"
    )
    op.drop_table("reconciliation_findings")
    op.drop_table("reconciliations")
