"""webhook endpoints: signing secrets sealed with the payload keys (wider columns)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 00:00:00

Rows written before stay readable in clear (the type passes unsealed values through) and are
sealed at their next rotation.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ("secret", "previous_secret"):
        op.alter_column(
            "webhook_endpoints", column, type_=sa.String(512), existing_type=sa.String(128)
        )


def downgrade() -> None:
    for column in ("secret", "previous_secret"):
        op.alter_column(
            "webhook_endpoints", column, type_=sa.String(128), existing_type=sa.String(512)
        )
