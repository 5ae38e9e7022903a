"""Activities on the system of record: apply (validate + reserve), status moves, timeline.

Each runs in one transaction and is idempotent by refund_no: running it twice changes nothing
the second time. The `LedgerSteps` methods serve the refund workflow; the ones named by
`domain.activity_names` serve runs of the first workflow type until they drain (design §4).
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import LedgerSteps
from activities.errors import business_errors
from activities.outbox import Relay, outbox_transaction
from refunds.db.models import Order, Refund
from refunds.db.outbox import OutboxRepository
from refunds.db.repositories import OrderRepository, RefundRepository
from refunds.domain import activity_names as names
from refunds.domain.errors import (
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
    OrderStatus,
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
from refunds.domain.transitions import can_move, money_effect

log = logging.getLogger("refunds.ledger")


def facts_of(order: Order, refund: Refund) -> RefundFacts:
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


def row_of(refund: Refund) -> RefundRow:
    return RefundRow(
        status=RefundStatus(refund.status),
        approved_by=refund.approved_by,
        gateway_refund_id=refund.gateway_refund_id,
        needs_manual_return=refund.needs_manual_return,
        updated_at=refund.updated_at.isoformat(),
        completed_at=refund.completed_at.isoformat() if refund.completed_at else None,
    )


async def move_refund(session: AsyncSession, refund: Refund, step: Step) -> None:
    """The step's status move with the order's money, and its timeline entry; the caller holds
    the refund row lock. A repeat of the move already made is a no-op (idempotent by status)."""
    assert step.to_status is not None
    current = RefundStatus(refund.status)
    if current == step.to_status:
        return
    if not can_move(current, step.to_status):
        raise RefundConflict(f"refund {refund.refund_no}: {current} -> {step.to_status}")
    order = await OrderRepository(session).get(refund.order_no, lock=True, items=False)
    _apply_money(order, *money_effect(current, step.to_status, refund.amount))
    _apply_refund_fields(refund, step.to_status, step.event, step.actor)
    await RefundRepository(session).add_event(
        refund.refund_no,
        step.actor,
        step.event,
        {**step.detail, "from": current.value, "to": step.to_status.value},
    )
    await session.flush()
    # The shops' event, in this transaction: the move and its event commit or vanish together.
    await OutboxRepository(session).add_refund_event(
        refund, event_type_of_move(step.to_status, step.event)
    )
    log.info(
        "refund_moved",
        extra={
            "refund_no": refund.refund_no,
            "order_no": refund.order_no,
            "from_status": current.value,
            "to_status": step.to_status.value,
            "event": step.event,
            "actor": step.actor,
            "amount": refund.amount,
        },
    )


def _apply_money(order: Order, reserved_delta: int, refunded_delta: int) -> None:
    order.reserved_amount += reserved_delta
    order.refunded_amount += refunded_delta
    # A cancelled order stays cancelled either way: it still takes refunds of what is owed.
    if order.paid_amount > 0 and order.refunded_amount == order.paid_amount:
        if order.status == OrderStatus.PAID:
            order.status = OrderStatus.REFUNDED.value
    elif order.status == OrderStatus.REFUNDED:
        order.status = OrderStatus.PAID.value
    order.updated_at = datetime.now(UTC)


def _apply_refund_fields(refund: Refund, to_status: RefundStatus, event: str, actor: str) -> None:
    refund.status = to_status.value
    refund.updated_at = datetime.now(UTC)
    if event == "approved":
        refund.approved_by = actor
    if to_status == RefundStatus.SUCCEEDED or to_status in RELEASED_STATUSES:
        refund.completed_at = refund.updated_at


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
                auto_approved=self._auto_approved(refund, request),
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
            repo = RefundRepository(session)
            refund = await repo.get(step.facts.refund_no, lock=step.to_status is not None)
            if step.to_status is not None:
                await move_refund(session, refund, step)
            else:
                await repo.add_event(
                    refund.refund_no, step.actor, step.event, dict(step.detail), step.key or None
                )
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
    ) -> tuple[Order, Refund, bool]:
        """The order, the refund and whether this run owns it: a new refund reserved under the
        order's row lock, or the one this refund_no already names (same caller, same body)."""
        run_id = activity.info().workflow_run_id or ""
        refunds = RefundRepository(session)
        existing = await refunds.find(request.refund_no)
        if existing is not None:
            return await self._replay(session, existing, request, run_id)
        order = await OrderRepository(session).find(request.order_no, lock=True)
        self._check_order(order, request)
        assert order is not None
        await self._check_items(session, order, request)
        await self._reserve(session, order, request.amount)
        refund = self._new_refund(order, request, run_id)
        session.add(refund)
        await session.flush()
        await refunds.add_event(
            refund.refund_no,
            request.requested_by,
            "requested",
            {
                "amount": request.amount,
                "currency": order.currency,
                "reason": request.reason,
                "source": str(request.source),
            },
            dedupe_key=f"{refund.refund_no}:requested",
        )
        await OutboxRepository(session).add_refund_event(refund, EventType.REFUND_CREATED)
        log.info(
            "refund_applied",
            extra={
                "refund_no": refund.refund_no,
                "order_no": order.order_no,
                "amount": request.amount,
                "currency": order.currency,
                "source": str(request.source),
            },
        )
        return order, refund, True

    async def _replay(
        self, session: AsyncSession, refund: Refund, request: RefundRequest, run_id: str
    ) -> tuple[Order, Refund, bool]:
        if hidden_from(request, refund.requested_by):
            raise RefundNotFound(f"refund {refund.refund_no} not found")  # not this caller's
        if refund.request_fingerprint != request_fingerprint(request):
            raise RefundConflict(f"refund {refund.refund_no} exists with a different request")
        order = await OrderRepository(session).get(refund.order_no)
        return order, refund, refund.workflow_run_id == run_id

    def _check_order(self, order: Order | None, request: RefundRequest) -> None:
        customer_mismatch = (
            order is not None
            and request.source == RefundSource.CUSTOMER
            and order.user_id != request.requested_by
        )
        if order is None or customer_mismatch:
            raise OrderNotFound(f"order {request.order_no} not found")
        if order.status not in REFUNDABLE_ORDER_STATUSES or order.paid_amount == 0:
            raise OrderNotPaid(f"order {order.order_no} is {order.status}, not paid")

    async def _check_items(
        self, session: AsyncSession, order: Order, request: RefundRequest
    ) -> None:
        if not request.items:
            return  # a refund of money only: nothing to check, no query
        ordered = {item.sku: item.quantity for item in order.items}
        returned: dict[str, int] = {}
        for other in await OrderRepository(session).refunds(order.order_no):
            if other.status not in RELEASED_STATUSES:
                for line in other.items:
                    returned[line["sku"]] = returned.get(line["sku"], 0) + int(line["quantity"])
        for item in request.items:
            if item.sku not in ordered:
                raise InvalidRefundItems(f"sku {item.sku} is not in order {order.order_no}")
            left = ordered[item.sku] - returned.get(item.sku, 0)
            if item.quantity <= 0 or item.quantity > left:
                raise InvalidRefundItems(
                    f"sku {item.sku}: {item.quantity} requested, {left} left to return"
                )

    async def _reserve(self, session: AsyncSession, order: Order, amount: int) -> None:
        """Conditional update: the database refuses to reserve past paid_amount, any concurrency."""
        refundable = order.paid_amount - order.reserved_amount
        stmt = (
            update(Order)
            .where(Order.id == order.id, Order.reserved_amount + amount <= Order.paid_amount)
            .values(reserved_amount=Order.reserved_amount + amount, updated_at=datetime.now(UTC))
            .returning(Order.reserved_amount)
        )
        if (await session.execute(stmt)).scalar_one_or_none() is None:
            raise RefundExceedsPaid(
                f"amount {amount} exceeds the refundable {refundable} of order {order.order_no}"
            )

    def _new_refund(self, order: Order, request: RefundRequest, run_id: str) -> Refund:
        now = datetime.now(UTC)  # set here, so the step can answer with it without a read
        return Refund(
            created_at=now,
            updated_at=now,
            refund_no=request.refund_no,
            order_no=order.order_no,
            amount=request.amount,
            currency=order.currency,
            channel=order.channel,
            reason=request.reason,
            items=[asdict(i) for i in request.items],
            source=str(request.source),
            requested_by=request.requested_by,
            status=RefundStatus.PENDING_APPROVAL.value,
            request_fingerprint=request_fingerprint(request),
            workflow_run_id=run_id,
            needs_manual_return=False,
        )

    @staticmethod
    def _auto_approved(refund: Refund, request: RefundRequest) -> bool:
        limit = request.auto_approve_limit
        return refund.source == RefundSource.ADMIN and 0 < refund.amount <= limit

    def _result(
        self, order: Order, refund: Refund, request: RefundRequest, owned: bool
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
            auto_approved=self._auto_approved(refund, request),
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
    ) -> tuple[Order, Refund, bool]:
        """A repair run takes a refund over from the run that was closed under it; a terminal
        refund is not claimed (owned False): there is nothing left to carry on."""
        run_id = activity.info().workflow_run_id or ""
        refunds = RefundRepository(session)
        refund = await refunds.get(request.refund_no, lock=True)
        order = await OrderRepository(session).get(refund.order_no)
        if RefundStatus(refund.status) in TERMINAL_STATUSES:
            return order, refund, refund.workflow_run_id == run_id
        previous, refund.workflow_run_id = refund.workflow_run_id, run_id
        await refunds.add_event(
            refund.refund_no,
            "reconciliation",
            "repaired",
            {"status": refund.status, "previous_run_id": previous, "run_id": run_id},
            dedupe_key=f"{refund.refund_no}:repaired:{run_id}",
        )
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
            refund = await RefundRepository(session).get(move.refund_no, lock=True)
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
