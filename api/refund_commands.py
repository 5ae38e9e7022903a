"""Commands that go to refund workflows: apply (Update-with-Start), approve, reject, resolve.

The API never moves a refund itself: the workflow owns its state and answers synchronously,
with the refund as its step committed it (`RefundView`), which the API returns as it is.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal
from api.errors import domain_error_from_temporal
from api.schemas import RefundIn
from refunds.db.models import Order, Refund
from refunds.db.repositories import RefundRepository
from refunds.domain.customer_view import CUSTOMER_MESSAGE_EVENT, customer_message_detail
from refunds.domain.decision_signing import decision_signature
from refunds.domain.errors import (
    CurrencyMismatch,
    RefundConflict,
    RefundNotAbnormal,
    RefundNotFound,
    RefundNotPendingApproval,
)
from refunds.domain.idempotency import hidden_from, request_fingerprint
from refunds.domain.matching import check_refund_no
from refunds.domain.messages import (
    Channel,
    Decision,
    RefundItem,
    RefundRequest,
    RefundSource,
    RefundStatus,
    RefundView,
    Resolution,
    ResolveOutcome,
)
from refunds.runtime.refund_runs import run_summary
from refunds.settings import Settings
from workflows.refund import RefundWorkflow, start_attributes, workflow_id

RESOLVED_STATUS = {
    ResolveOutcome.SUCCEEDED: RefundStatus.SUCCEEDED,
    ResolveOutcome.FAILED: RefundStatus.FAILED,
}
# A refund command waits for its workflow's answer this long, then the caller gets a 503.
RPC_TIMEOUT = timedelta(seconds=30)


def choose_refund_no(principal: Principal, body: RefundIn, idempotency_key: str | None) -> str:
    """The caller's refund_no, else one derived from its Idempotency-Key, else a fresh one."""
    if body.refund_no is not None:
        return check_refund_no(body.refund_no)
    if idempotency_key:
        digest = hashlib.sha256(f"{principal.id}\0{idempotency_key}".encode()).hexdigest()
        return f"rf_{digest[:24]}"
    return f"rf_{uuid.uuid4().hex[:24]}"


def build_request(
    principal: Principal, order: Order, body: RefundIn, refund_no: str, settings: Settings
) -> RefundRequest:
    if body.currency is not None and body.currency != order.currency:
        raise CurrencyMismatch(
            f"currency {body.currency} differs from the order's {order.currency}"
        )
    source = RefundSource.ADMIN if principal.has("admin") else RefundSource.CUSTOMER
    return RefundRequest(
        refund_no=refund_no,
        order_no=order.order_no,
        amount=body.amount,
        reason=body.reason,
        requested_by=principal.id,
        source=source,
        items=[RefundItem(i.sku, i.quantity) for i in body.items],
        timings=settings.refund_timings(),
        auto_approve_limit=settings.auto_approve_limit_for(order.currency),
    )


async def submit_refund(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    request: RefundRequest,
    order: Order,
) -> Refund | RefundView:
    """Start the refund's workflow and answer with what it applied; a refund_no that exists
    already answers with its row (same caller, same body), and starts nothing."""
    existing = await RefundRepository(session).find(request.refund_no)
    if existing is not None:
        if hidden_from(request, existing.requested_by):
            raise RefundNotFound(f"refund {request.refund_no} not found")  # another customer's
        if existing.request_fingerprint != request_fingerprint(request):
            raise RefundConflict(f"refund {request.refund_no} exists with a different request")
        return existing
    operation = WithStartWorkflowOperation(
        RefundWorkflow.run,
        request,
        id=workflow_id(request.refund_no),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # What ops filter and read in the Temporal UI's list before opening a refund.
        search_attributes=start_attributes(
            request.refund_no,
            order.order_no,
            Channel(order.channel),
            request.amount,
            RefundStatus.PENDING_APPROVAL,
        ),
        static_summary=run_summary(
            request.refund_no, order.order_no, f"{request.source.value} request"
        ),
    )
    await session.rollback()  # no snapshot held across the workflow round trip
    try:
        # The update carries this caller's request: if another caller's workflow is already
        # running under this refund_no, it refuses a different body or another customer.
        return await client.execute_update_with_start_workflow(
            RefundWorkflow.apply,
            request,
            start_workflow_operation=operation,
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowUpdateFailedError as err:
        raise domain_error_from_temporal(err) or err from err


async def _update(
    client: Client,
    session: AsyncSession,
    refund_no: str,
    send: Callable[[WorkflowHandle[RefundWorkflow, RefundView]], Awaitable[RefundView]],
    not_open: type[RefundNotPendingApproval] | type[RefundNotAbnormal],
) -> RefundView:
    """The update's answer. The ledger is read only when there is no open run to answer."""
    handle = client.get_workflow_handle_for(RefundWorkflow.run, workflow_id(refund_no))
    try:
        view = await send(handle)
    except WorkflowUpdateFailedError as err:
        raise domain_error_from_temporal(err) or err from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        refund = await RefundRepository(session).find(refund_no)  # no run: finished or none
        if refund is None:
            raise RefundNotFound(f"refund {refund_no} not found") from err
        raise not_open(f"refund {refund_no} is {refund.status}") from err
    return view


def signed_decision(key: str | None, verb: str, refund_no: str, actor: str, note: str) -> Decision:
    """What the person decided, signed for the workflow (`domain.decision_signing`)."""
    assert key is not None, "settings fill the decision key (dev) or require it"
    return Decision(actor, note, decision_signature(key, verb, refund_no, actor, "", note))


def signed_resolution(key: str | None, refund_no: str, resolution: Resolution) -> Resolution:
    assert key is not None, "settings fill the decision key (dev) or require it"
    outcome = resolution.outcome.value
    signature = decision_signature(
        key, "resolve", refund_no, resolution.actor, outcome, resolution.note
    )
    return replace(resolution, signature=signature)


async def tell_customer(
    session: AsyncSession, view: RefundView, actor: str, message: str, status: RefundStatus
) -> None:
    """A decision's message for the customer, on the timeline beside the move it explains,
    with the status the workflow answered (else `status`, from a run that answers without it).
    Written by the API after the workflow took the decision, never carried in the workflow's
    messages: the note the workflow stores stays the shop's, and only a person the API
    authenticated as staff writes what the customer reads."""
    if not message:
        return
    detail = customer_message_detail(message, view.status or status)
    await RefundRepository(session).add_event(view.refund_no, actor, CUSTOMER_MESSAGE_EVENT, detail)
    await session.commit()


async def approve(
    client: Client,
    session: AsyncSession,
    refund_no: str,
    actor: str,
    note: str,
    *,
    key: str | None,
    customer_message: str = "",
) -> RefundView:
    decision = signed_decision(key, "approve", refund_no, actor, note)
    view = await _update(
        client,
        session,
        refund_no,
        lambda h: h.execute_update(RefundWorkflow.approve, decision, rpc_timeout=RPC_TIMEOUT),
        RefundNotPendingApproval,
    )
    await tell_customer(session, view, actor, customer_message, RefundStatus.PROCESSING)
    return view


async def reject(
    client: Client,
    session: AsyncSession,
    refund_no: str,
    actor: str,
    reason: str,
    *,
    key: str | None,
) -> RefundView:
    decision = signed_decision(key, "reject", refund_no, actor, reason)
    return await _update(
        client,
        session,
        refund_no,
        lambda h: h.execute_update(RefundWorkflow.reject, decision, rpc_timeout=RPC_TIMEOUT),
        RefundNotPendingApproval,
    )


async def resolve(
    client: Client,
    session: AsyncSession,
    refund_no: str,
    resolution: Resolution,
    *,
    key: str | None,
    customer_message: str = "",
) -> RefundView:
    resolution = signed_resolution(key, refund_no, resolution)
    view = await _update(
        client,
        session,
        refund_no,
        lambda h: h.execute_update(RefundWorkflow.resolve, resolution, rpc_timeout=RPC_TIMEOUT),
        RefundNotAbnormal,
    )
    outcome = RESOLVED_STATUS[resolution.outcome]
    await tell_customer(session, view, resolution.actor, customer_message, outcome)
    return view
