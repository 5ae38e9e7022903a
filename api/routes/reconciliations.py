"""Reconciliation runs of the ledger against the gateways (issue 9): for ops and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

# One cursor format for every list of this API: the refunds route owns it.
from api.cursors import decode_cursor, encode_cursor
from api.deps import PrincipalDep, SessionDep
from api.errors import documented
from api.params import Cursor
from api.schemas import PathId, ReconciliationDetailOut, ReconciliationOut, ReconciliationPage
from refunds.db.reconciliations import ReconciliationRepository

router = APIRouter(prefix="/v1/reconciliations", tags=["reconciliations"])

READERS = ("ops", "admin")


@router.get("", response_model=ReconciliationPage, responses=documented(401, 403, 422))
async def list_reconciliations(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> ReconciliationPage:
    """Reconciliation runs, newest first, with their counts and an opaque cursor."""
    principal.require(*READERS)
    rows = await ReconciliationRepository(session).page(limit + 1, decode_cursor(cursor))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    items = [ReconciliationOut.model_validate(r) for r in page]
    return ReconciliationPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{reconciliation_id}",
    response_model=ReconciliationDetailOut,
    responses=documented(401, 403, 404, 422),
)
async def get_reconciliation(
    reconciliation_id: PathId, principal: PrincipalDep, session: SessionDep
) -> ReconciliationDetailOut:
    """One reconciliation run with its counts and every finding."""
    principal.require(*READERS)
    run = await ReconciliationRepository(session).get(reconciliation_id)
    return ReconciliationDetailOut.model_validate(run)
