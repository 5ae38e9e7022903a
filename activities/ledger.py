"""Activities on the system of record: apply (validate + reserve), status moves, timeline.

Each runs in one transaction and is idempotent by refund_no: running it twice changes nothing
the second time. The `LedgerSteps` methods serve the refund workflow; the ones named by
`domain.activity_names` serve runs of the first workflow type until they drain (design §4).
Rows are read as records (`refunds.db.records`) and a step's writes go out as one statement
(`refunds.db.step_writes`): a step costs few round trips and no ORM work (issue 11).
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import LedgerSteps
from activities.errors import business_errors
from activities.outbox import Relay, outbox_transaction
from refunds.db.records import OrderRecord, Records, RefundRecord
from refunds.db.repositories import RefundRepository
from refunds.db.step_writes import Entry, StepWrites
from refunds.domain import activity_names as names
from refunds.domain import approval_policy as policy
from refunds.domain.errors import (
    GatewayAnswerUnverified,
    GatewayRefundPending,
    GatewayReportedSuccess,
    InvalidRefundItems,
    OrderNotFound,
    OrderNotPaid,
    RefundConflict,
    RefundExceedsPaid,
    RefundNotFound,
)
from refunds.domain.idempotency import hidden_from, request_fingerprint
from refunds.domain.messages import (
    REFUNDABLE_ORDER_STATUSES,
    RELEASED_STATUSES,
    TERMINAL_STATUSES,
    Applied,
    ApplyResult,
    Channel,
    GatewayStatus,
    RefundFacts,
    RefundRequest,
    RefundRow,
    RefundSource,
    RefundStatus,
    Step,
    TimelineInput,
    TransitionInput,
)
from refunds.domain.outgoing import EventType, event_type_of_move
from refunds.domain.transitions import UNFINISHED_GATEWAY, can_move, heard_status, money_effect

log = logging.getLogger("refunds.ledger")
# The orders CHECK that keeps refunded ≤ reserved ≤ paid (refunds/db/models.py).
MONEY_CHECK = "refunds_within_paid"


def facts_of(order: OrderRecord, refund: RefundRecord) -> RefundFacts:
    return RefundFacts(
        refund_no=refund.refund_no,
        order_no=order.order_no,
        amount=refund.amount,
        currency=refund.currency,
        channel=Channel(order.channel),
        payment_ref=order.payment_ref or "",
        total_amount=order.paid_amount,
        reason=refund.reason,
        requested_by=refund.requested_by,
        source=RefundSource(refund.source),
        items=refund.item_list(),
        created_at=refund.created_at.isoformat(),
    )


def row_of(refund: RefundRecord) -> RefundRow:
    return RefundRow(
        status=RefundStatus(refund.status),
        approved_by=refund.approved_by,
        gateway_refund_id=refund.gateway_refund_id,
        needs_manual_return=refund.needs_manual_return,
        updated_at=refund.updated_at.isoformat(),
        completed_at=refund.completed_at.isoformat() if refund.completed_at else None,
    )


def plan_move(refund: RefundRecord, step: Step, writes: StepWrites) -> RefundRecord:
    """The step's status move into `writes`, with the order's money, its timeline entry and the
    shops' event: they commit or vanish together. The caller holds the refund row lock (so the
    next event sequence is the row's + 1) and sends `writes`. Returns the refund as moved; a
    repeat of the move already made writes nothing (idempotent by status)."""
    assert step.to_status is not None
    current, to = RefundStatus(refund.status), step.to_status
    if current == to:
        return refund
    if not can_move(current, to):
        raise RefundConflict(f"refund {refund.refund_no}: {current} -> {to}")
    now = datetime.now(UTC)
    finished = to == RefundStatus.SUCCEEDED or to in RELEASED_STATUSES
    moved = replace(
        refund,
        status=to.value,
        updated_at=now,
        approved_by=step.actor if step.event == "approved" else refund.approved_by,
        completed_at=now if finished else refund.completed_at,
        event_sequence=refund.event_sequence + 1,
    )
    writes.money(refund.order_no, *money_effect(current, to, refund.amount), at=now)
    writes.move(moved)
    detail = {**step.detail, "from": current.value, "to": to.value}
    writes.entry(Entry(step.actor, step.event, detail))
    writes.event(moved, event_type_of_move(to, step.event))
    log.info(
        "refund_moved",
        extra={
            "refund_no": refund.refund_no,
            "order_no": refund.order_no,
            "from_status": current.value,
            "to_status": to.value,
            "event": step.event,
            "actor": step.actor,
            "amount": refund.amount,
        },
    )
    return moved


async def send_within_paid(session: AsyncSession, writes: StepWrites) -> None:
    """The step's statement; a move the order's money CHECK refuses (a failed refund reopened
    after the order's other refunds took its amount) is a business error, not a retry."""
    try:
        await writes.send(session)
    except IntegrityError as exc:
        if MONEY_CHECK not in str(exc.orig):
            raise
        raise RefundExceedsPaid(
            f"refund {writes.refund_no}: the order's refunds would exceed what was paid"
        ) from exc


def refuse_unheard(refund: RefundRecord, step: Step) -> None:
    """A move the gateway's word causes happens only if the ledger heard that word itself: what
    a signal says is not proof (anyone who reaches Temporal can send one)."""
    if not step.requires_heard:
        return
    heard = heard_status(refund.gateway_status)
    if heard not in step.requires_heard:
        said = "/".join(s.value for s in step.requires_heard)
        raise GatewayAnswerUnverified(
            f"refund {refund.refund_no}: the gateway's {said} was not heard by the ledger "
            f"(it has heard {heard.value if heard else 'nothing'})"
        )


def refuse_while_gateway_paying(refund: RefundRecord) -> None:
    """The gateway status this refund has heard, read under its row lock (every webhook and
    gateway answer writes it under that lock): a decision that releases the amount may not
    contradict a gateway that paid or may still pay."""
    heard = heard_status(refund.gateway_status)
    if heard == GatewayStatus.SUCCEEDED:
        raise GatewayReportedSuccess(
            f"the gateway reported refund {refund.refund_no} succeeded: it cannot be failed"
        )
    if heard in UNFINISHED_GATEWAY:
        raise GatewayRefundPending(
            f"the gateway still has refund {refund.refund_no} {heard.value}; it may still pay it"
        )


async def move_refund(session: AsyncSession, refund: RefundRecord, step: Step) -> RefundRecord:
    """`plan_move`, written; the caller holds the refund row lock."""
    writes = StepWrites(refund.refund_no)
    moved = plan_move(refund, step, writes)
    await writes.send(session)
    return moved


class LedgerActivities(LedgerSteps):
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], relay: Relay | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.relay = relay

    def _transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        return outbox_transaction(self.sessionmaker, self.relay)

    @activity.defn
    @business_errors
    async def open_refund(self, request: RefundRequest) -> Applied:
        async with self._transaction() as session:
            order, refund, owned = await self._open(session, request)
            return Applied(
                facts_of(order, refund),
                row_of(refund),
                auto_approved=refund.auto_approved,  # as decided when it was applied
                owned=owned,
            )

    @activity.defn
    @business_errors
    async def claim_refund_run(self, request: RefundRequest) -> Applied:
        async with self.sessionmaker.begin() as session:
            order, refund, owned = await self._claim(session, request)
            return Applied(facts_of(order, refund), row_of(refund), owned=owned)

    @activity.defn
    @business_errors
    async def record_step(self, step: Step) -> RefundRow:
        async with self._transaction() as session:
            moves = step.to_status is not None
            refund = await Records(session).refund(step.facts.refund_no, lock=moves)
            if step.confirm_gateway_not_paying:
                refuse_while_gateway_paying(refund)
            refuse_unheard(refund, step)
            writes = StepWrites(refund.refund_no)
            if moves:
                refund = plan_move(refund, step, writes)
            else:
                entry = Entry(step.actor, step.event, dict(step.detail), step.key or None)
                writes.entry(entry)
            await send_within_paid(session, writes)
            return row_of(refund)

    # ---- the first workflow type's activities (kept until its runs drain) ------------------

    @activity.defn(name=names.APPLY_REFUND)
    @business_errors
    async def apply_refund(self, request: RefundRequest) -> ApplyResult:
        """Validate and reserve the amount in one transaction, under the order's row lock."""
        async with self._transaction() as session:
            order, refund, owned = await self._open(session, request)
            return self._result(order, refund, request, owned)

    async def _open(
        self, session: AsyncSession, request: RefundRequest
    ) -> tuple[OrderRecord, RefundRecord, bool]:
        """The order, the refund and whether this run owns it: a new refund reserved under the
        order's row lock, or the one this refund_no already names (same caller, same body)."""
        run_id = activity.info().workflow_run_id or ""
        records = Records(session)
        order, taken = await records.order_to_open(request.order_no, request.refund_no)
        if taken:
            existing = await records.refund(request.refund_no)
            return await self._replay(records, existing, order, request, run_id)
        order = self._check_order(order, request)
        await self._check_items(records, order, request)
        now = datetime.now(UTC)  # set here, so the step can answer with it without a read
        if not await records.reserve(order.id, request.amount, now):
            refundable = order.paid_amount - order.reserved_amount
            raise RefundExceedsPaid(
                f"amount {request.amount} exceeds the refundable {refundable} "
                f"of order {order.order_no}"
            )
        auto_approved, declined = await self._policy(records, order, request, now)
        refund = self._new_refund(order, request, run_id, now, auto_approved)
        writes = StepWrites(refund.refund_no)
        writes.new_refund(refund)
        requested = {
            "amount": request.amount,
            "currency": order.currency,
            "reason": request.reason,
            "source": str(request.source),
        }
        writes.entry(
            Entry(request.requested_by, "requested", requested, f"{refund.refund_no}:requested")
        )
        if declined is not None:
            key = f"{refund.refund_no}:auto_approval_declined"
            writes.entry(Entry("policy", "auto_approval_declined", declined, key))
        writes.event(refund, EventType.REFUND_CREATED)
        await writes.send(session)
        log.info(
            "refund_applied",
            extra={
                "refund_no": refund.refund_no,
                "order_no": order.order_no,
                "amount": request.amount,
                "currency": order.currency,
                "source": str(request.source),
                "auto_approved": auto_approved,
            },
        )
        return order, refund, True

    async def _policy(
        self, records: Records, order: OrderRecord, request: RefundRequest, now: datetime
    ) -> tuple[bool, dict[str, Any] | None]:
        """Whether the policy approves this refund, and, when it was eligible by amount but the
        sums leave too little, why not (for the timeline). The caller holds the order's row lock,
        which serializes the order's applies; the requester's day is serialized by its own lock,
        always taken after the order's, so two applies cannot wait on each other."""
        limit = request.auto_approve_limit
        if not policy.eligible(request.source, request.amount, limit):
            return False, None
        day = policy.day_of(now)
        await records.lock_policy(policy.lock_key(request.requested_by, order.currency, day))
        used = await records.policy_use(order.order_no, request.requested_by, order.currency, day)
        if policy.approves(request.source, request.amount, limit, used):
            return True, None
        return False, {
            "limit_policy": "REFUNDS_AUTO_APPROVE_LIMIT",
            "limit": limit,
            "currency": order.currency,
            "approved_on_order": used.order,
            "approved_by_requester_today": used.requester_day,
            "remaining": policy.remaining(limit, used),
        }

    async def _replay(
        self,
        records: Records,
        refund: RefundRecord,
        order: OrderRecord | None,
        request: RefundRequest,
        run_id: str,
    ) -> tuple[OrderRecord, RefundRecord, bool]:
        if hidden_from(request, refund.requested_by):
            raise RefundNotFound(f"refund {refund.refund_no} not found")  # not this caller's
        if refund.request_fingerprint != request_fingerprint(request):
            raise RefundConflict(f"refund {refund.refund_no} exists with a different request")
        if order is None or order.order_no != refund.order_no:
            order = await records.order(refund.order_no)
        return order, refund, refund.workflow_run_id == run_id

    def _check_order(self, order: OrderRecord | None, request: RefundRequest) -> OrderRecord:
        customer_mismatch = (
            order is not None
            and request.source == RefundSource.CUSTOMER
            and order.user_id != request.requested_by
        )
        if order is None or customer_mismatch:
            raise OrderNotFound(f"order {request.order_no} not found")
        if order.status not in REFUNDABLE_ORDER_STATUSES or order.paid_amount == 0:
            raise OrderNotPaid(f"order {order.order_no} is {order.status}, not paid")
        return order

    async def _check_items(
        self, records: Records, order: OrderRecord, request: RefundRequest
    ) -> None:
        if not request.items:
            return  # a refund of money only: nothing to check, no query
        ordered = dict(await records.order_items(order.id))
        returned: dict[str, int] = {}
        for status, items in await records.refunds_items(order.order_no):
            if status not in RELEASED_STATUSES:
                for line in items:
                    returned[line["sku"]] = returned.get(line["sku"], 0) + int(line["quantity"])
        for item in request.items:
            if item.sku not in ordered:
                raise InvalidRefundItems(f"sku {item.sku} is not in order {order.order_no}")
            left = ordered[item.sku] - returned.get(item.sku, 0)
            if item.quantity <= 0 or item.quantity > left:
                raise InvalidRefundItems(
                    f"sku {item.sku}: {item.quantity} requested, {left} left to return"
                )

    def _new_refund(
        self,
        order: OrderRecord,
        request: RefundRequest,
        run_id: str,
        now: datetime,
        auto_approved: bool,
    ) -> RefundRecord:
        return RefundRecord(
            refund_no=request.refund_no,
            order_no=order.order_no,
            amount=request.amount,
            currency=order.currency,
            channel=order.channel,
            reason=request.reason,
            items=[asdict(i) for i in request.items],
            source=str(request.source),
            requested_by=request.requested_by,
            approved_by=None,
            gateway_refund_id=None,
            status=RefundStatus.PENDING_APPROVAL.value,
            needs_manual_return=False,
            request_fingerprint=request_fingerprint(request),
            workflow_run_id=run_id,
            gateway_status=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
            event_sequence=1,  # its `refund.created`, written with it
            auto_approved=auto_approved,
        )

    def _result(
        self, order: OrderRecord, refund: RefundRecord, request: RefundRequest, owned: bool
    ) -> ApplyResult:
        return ApplyResult(
            refund_no=refund.refund_no,
            order_no=order.order_no,
            amount=refund.amount,
            currency=refund.currency,
            channel=Channel(order.channel),
            payment_ref=order.payment_ref or "",
            status=RefundStatus(refund.status),
            total_amount=order.paid_amount,
            auto_approved=refund.auto_approved,
            owned=owned,
        )

    @activity.defn(name=names.CLAIM_REFUND)
    @business_errors
    async def claim_refund(self, request: RefundRequest) -> ApplyResult:
        async with self.sessionmaker.begin() as session:
            order, refund, owned = await self._claim(session, request)
            return self._result(order, refund, request, owned)

    async def _claim(
        self, session: AsyncSession, request: RefundRequest
    ) -> tuple[OrderRecord, RefundRecord, bool]:
        """A repair run takes a refund over from the run that was closed under it; a terminal
        refund is not claimed (owned False): there is nothing left to carry on."""
        run_id = activity.info().workflow_run_id or ""
        records = Records(session)
        refund = await records.refund(request.refund_no, lock=True)
        order = await records.order(refund.order_no)
        if RefundStatus(refund.status) in TERMINAL_STATUSES:
            return order, refund, refund.workflow_run_id == run_id
        previous = refund.workflow_run_id
        refund = replace(refund, workflow_run_id=run_id)
        writes = StepWrites(refund.refund_no)
        writes.owner(run_id)
        repaired = {"status": refund.status, "previous_run_id": previous, "run_id": run_id}
        writes.entry(
            Entry("reconciliation", "repaired", repaired, f"{refund.refund_no}:repaired:{run_id}")
        )
        await writes.send(session)
        log.warning(
            "refund_repaired",
            extra={"refund_no": refund.refund_no, "status": refund.status, "run_id": run_id},
        )
        return order, refund, True

    @activity.defn(name=names.TRANSITION)
    @business_errors
    async def transition(self, move: TransitionInput) -> RefundStatus:
        """Move the refund and the order's money together; a repeat of the same move is a no-op."""
        async with self._transaction() as session:
            refund = await Records(session).refund(move.refund_no, lock=True)
            step = Step(
                RefundFacts(
                    refund.refund_no,
                    refund.order_no,
                    refund.amount,
                    refund.currency,
                    Channel(refund.channel),
                    "",
                    0,
                    refund.reason,
                    refund.requested_by,
                    RefundSource(refund.source),
                ),
                move.actor,
                move.event,
                dict(move.detail),
                to_status=move.to_status,
            )
            await move_refund(session, refund, step)
            return move.to_status

    @activity.defn(name=names.RECORD_EVENT)
    @business_errors
    async def record_event(self, entry: TimelineInput) -> bool:
        """Append a timeline event once (keyed by dedupe_key); remember the gateway's refund id."""
        async with self.sessionmaker.begin() as session:
            repo = RefundRepository(session)
            if entry.gateway_refund_id is not None:
                refund = await repo.get(entry.refund_no, lock=True)
                refund.gateway_refund_id = entry.gateway_refund_id
            return await repo.add_event(
                entry.refund_no, entry.actor, entry.event, dict(entry.detail), entry.dedupe_key
            )
