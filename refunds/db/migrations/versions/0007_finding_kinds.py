"""finding kinds: gateway_succeeded_after_failure, lookup_failed, adjudicated

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 00:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from domain/: a migration is a snapshot of the schema at its
# revision. A new FindingKind needs a new migration (tests/db checks they agree).
BEFORE = "'gateway_succeeded','gateway_failed','mismatch','repaired','overdue'"
AFTER = BEFORE + ",'gateway_succeeded_after_failure','lookup_failed','adjudicated'"
NAME = "ck_reconciliation_findings_kind"


def _kinds(kinds: str) -> None:
    # Widening an IN list: drop and add in one transaction (no row can violate the wider one).
    op.drop_constraint(op.f(NAME), "reconciliation_findings", type_="check")
    op.create_check_constraint(op.f(NAME), "reconciliation_findings", f"kind IN ({kinds})")


def upgrade() -> None:
    _kinds(AFTER)


def downgrade() -> None:
    op.execute(
        "DELETE FROM reconciliation_findings WHERE kind IN "
        "('gateway_succeeded_after_failure','lookup_failed','adjudicated')"
    )
    _kinds(BEFORE)
