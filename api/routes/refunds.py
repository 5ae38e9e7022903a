"""Refunds: apply, decide, resolve, read. The API only reads here: the workflows write."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from api import refund_commands
from api.cursors import decode_cursor, encode_cursor
from api.deps import PrincipalDep, ReadSessionDep, SettingsDep, TemporalDep
from api.errors import documented
from api.params import Cursor
from api.read_models import (
    answered_refund,
    in_view,
    refund_for,
    refund_out,
    visible_order,
    visible_refund,
)
from api.schemas import (
    IDENTIFIER,
    ApproveIn,
    CustomerRefundOut,
    PathKey,
    RefundIn,
    RefundOut,
    RefundPage,
    RejectIn,
    ResolveIn,
)
from refunds.db.repositories import RefundRepository
from refunds.domain.messages import Channel, RefundStatus, Resolution

# Commands wait for the refund's workflow: Temporal not answering is a 503.
COMMAND_ERRORS = documented(400, 401, 403, 404, 409, 413, 422, 503)

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])

# Staff read the shop's model; the refund's customer reads `CustomerRefundOut` (no staff, notes
# or gateway data): the two shapes share no set of required fields.
EITHER_VIEW = RefundOut | CustomerRefundOut
VIEWS = "`RefundOut` for staff (approver, admin, ops); `CustomerRefundOut` for the customer"


@router.post(
    "",
    response_model=EITHER_VIEW,
    status_code=status.HTTP_202_ACCEPTED,
    responses={202: {"description": f"The refund as applied: {VIEWS}"}, **COMMAND_ERRORS},
)
async def create_refund(
    body: RefundIn,
    principal: PrincipalDep,
    session: ReadSessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> RefundOut | CustomerRefundOut:
    """Apply for a refund: validated and reserved synchronously, then carried by its workflow.
    The answer is the refund as applied; its timeline is `GET /v1/refunds/{refund_no}`."""
    principal.require("customer", "admin")
    # The order's lines are the workflow's to check the refund's items against.
    order = await visible_order(session, principal, body.order_no, items=False)
    refund_no = refund_commands.choose_refund_no(principal, body, idempotency_key)
    request = refund_commands.build_request(principal, order, body, refund_no, settings)
    answer = await refund_commands.submit_refund(session, client, settings, request, order)
    return in_view(principal, await answered_refund(session, principal, answer))


@router.post("/{refund_no}/approve", response_model=RefundOut, responses=COMMAND_ERRORS)
async def approve_refund(
    refund_no: PathKey,
    body: ApproveIn,
    principal: PrincipalDep,
    session: ReadSessionDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> RefundOut:
    """Approve a pending refund; the requester cannot approve their own (403). The note is the
    shop's; `customer_message`, when given, is what the customer reads."""
    principal.require("approver", "admin")
    view = await refund_commands.approve(
        client,
        session,
        refund_no,
        principal.id,
        body.note,
        key=settings.decision_key,
        customer_message=body.customer_message,
    )
    return await answered_refund(session, principal, view)


@router.post("/{refund_no}/reject", response_model=RefundOut, responses=COMMAND_ERRORS)
async def reject_refund(
    refund_no: PathKey,
    body: RejectIn,
    principal: PrincipalDep,
    session: ReadSessionDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> RefundOut:
    """Reject a pending refund; its reservation is released; the customer reads the reason."""
    principal.require("approver", "admin")
    view = await refund_commands.reject(
        client, session, refund_no, principal.id, body.reason, key=settings.decision_key
    )
    return await answered_refund(session, principal, view)


@router.post("/{refund_no}/resolve", response_model=RefundOut, responses=COMMAND_ERRORS)
async def resolve_refund(
    refund_no: PathKey,
    body: ResolveIn,
    principal: PrincipalDep,
    session: ReadSessionDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> RefundOut:
    """Ops decide an abnormal refund: paid back offline (succeeded) or failed. The note is the
    shop's; `customer_message`, when given, is what the customer reads."""
    principal.require("ops")
    resolution = Resolution(principal.id, body.outcome, body.note)
    view = await refund_commands.resolve(
        client,
        session,
        refund_no,
        resolution,
        key=settings.decision_key,
        customer_message=body.customer_message,
    )
    return await answered_refund(session, principal, view)


@router.get(
    "/{refund_no}",
    response_model=EITHER_VIEW,
    responses={200: {"description": VIEWS}, **documented(401, 403, 404, 422)},
)
async def get_refund(
    refund_no: PathKey, principal: PrincipalDep, session: ReadSessionDep
) -> RefundOut | CustomerRefundOut:
    """A refund with its timeline: for staff who asked, who approved, what the gateway
    answered; for its customer the moves of its status and the shop's messages to them."""
    principal.require("customer", "admin", "approver", "ops")
    return await refund_for(session, principal, await visible_refund(session, principal, refund_no))


@router.get("", response_model=RefundPage, responses=documented(401, 403, 422))
async def list_refunds(
    principal: PrincipalDep,
    session: ReadSessionDep,
    status_: Annotated[RefundStatus | None, Query(alias="status")] = None,
    order_no: Annotated[str | None, Query(max_length=64, pattern=IDENTIFIER)] = None,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> RefundPage:
    """Refunds filtered by status, order or channel, oldest first, with an opaque cursor."""
    principal.require("admin", "approver", "ops")
    rows = await RefundRepository(session).search(
        status=status_,
        order_no=order_no,
        channel=channel,
        after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    page = list(rows[:limit])
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return RefundPage(items=[refund_out(r) for r in page], next_cursor=next_cursor)
