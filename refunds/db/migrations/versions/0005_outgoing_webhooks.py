"""webhook_endpoints, outgoing_events, event_deliveries, delivery_attempts: the transactional
outbox of the shops' webhooks, and refunds.event_sequence (issue 13)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    ]


def upgrade() -> None:
    op.add_column(
        "refunds",
        sa.Column("event_sequence", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("previous_secret", sa.String(length=128), nullable=True),
        sa.Column("previous_secret_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "outgoing_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("refund_no", sa.String(length=64), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outgoing_events_event_id")),
        sa.UniqueConstraint("refund_no", "sequence", name=op.f("uq_outgoing_events_refund_no")),
    )
    op.create_index(op.f("ix_outgoing_events_refund_no"), "outgoing_events", ["refund_no"])
    op.create_index("ix_outgoing_events_created_at", "outgoing_events", ["created_at"])
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("lane", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "state IN ('pending','delivered','failed')", name=op.f("ck_event_deliveries_state")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outgoing_events.id"],
            name=op.f("fk_event_deliveries_event_id_outgoing_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_event_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
        sa.UniqueConstraint("event_id", "endpoint_id", name=op.f("uq_event_deliveries_event_id")),
    )
    op.create_index(
        "ix_event_deliveries_endpoint_id_state", "event_deliveries", ["endpoint_id", "state"]
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["event_deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_event_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(op.f("ix_delivery_attempts_delivery_id"), "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("event_deliveries")
    op.drop_table("outgoing_events")
    op.drop_table("webhook_endpoints")
    op.drop_column("refunds", "event_sequence")
