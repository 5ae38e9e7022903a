"""Registering and cancelling orders: idempotent by order_no, a different body is a conflict.

An order registered `paid` is first checked against its payment at the gateway (through the
`PaymentCheck` workflow: the API never calls a gateway itself); a payment is one order's only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy

from api.errors import domain_error_from_temporal
from api.schemas import OrderIn
from refunds.db.models import Coupon, Order, OrderItem
from refunds.db.repositories import OrderRepository
from refunds.domain.errors import (
    DomainError,
    GatewayPermanentError,
    GatewayUnavailable,
    OrderConflict,
    OrderNotCancellable,
    PaymentNotFound,
    PaymentRefInUse,
    PaymentRefRequired,
)
from refunds.domain.messages import GatewayPayment, OrderStatus, PaymentQuery
from refunds.domain.payments import check_payment
from refunds.settings import Settings
from workflows.payment_check import PaymentCheckWorkflow, payment_check_id


def _same_order(order: Order, body: OrderIn) -> bool:
    fields = body.model_dump(exclude={"items"})
    if any(getattr(order, k) != v for k, v in fields.items()):
        return False
    mine = sorted((i.sku, i.quantity, i.unit_amount) for i in order.items)
    return mine == sorted((i.sku, i.quantity, i.unit_amount) for i in body.items)


async def register_order(
    session: AsyncSession, body: OrderIn, client: Client, settings: Settings
) -> tuple[Order, bool]:
    """(order, created). The same body again is the same order, with no second gateway check;
    another body is 409; a contradiction with the payment changes nothing."""
    repo = OrderRepository(session)
    if (registered := await _registered(repo, body)) is not None:
        return registered, False
    _check_body(body)
    # No transaction stays open over the gateway's answer.
    await session.rollback()
    if body.status == OrderStatus.PAID:
        assert body.payment_ref is not None  # _check_body
        query = settings.payment_query(body.channel, body.payment_ref)
        payment = await read_payment(client, settings, query)
        check_payment(body.channel, body.payment_ref, body.currency, body.paid_amount, payment)
    try:
        _add(session, body)
        # Flushes the order first (autoflush): a unique violation may surface here already.
        await _use_coupon(session, body)
        await session.commit()
    except IntegrityError:
        # A concurrent registration of the same order_no (or of another on the same payment)
        # won: the same order is answered as registered, anything else as its conflict.
        await session.rollback()
        if (registered := await _registered(repo, body)) is not None:
            return registered, False
        raise
    return await repo.get(body.order_no), True


async def _registered(repo: OrderRepository, body: OrderIn) -> Order | None:
    """The order already registered with this body; raises if the body conflicts with it, or
    if another order of the channel holds the payment."""
    existing = await repo.find(body.order_no)
    if existing is not None:
        if not _same_order(existing, body):
            raise OrderConflict(f"order {body.order_no} exists with different fields")
        return existing
    if body.payment_ref is not None:
        holder = await repo.on_payment(body.channel, body.payment_ref)
        if holder is not None:
            raise PaymentRefInUse(
                f"{body.channel} payment {body.payment_ref} is order {holder}'s: "
                "a payment is refunded through one order"
            )
    return None


def _check_body(body: OrderIn) -> None:
    if body.paid_amount > body.total_amount:
        raise OrderConflict("paid_amount exceeds total_amount")
    if body.status == OrderStatus.PAID and body.payment_ref is None:
        raise PaymentRefRequired("a paid order names its payment (payment_ref)")


async def read_payment(
    client: Client, settings: Settings, query: PaymentQuery
) -> GatewayPayment | None:
    """The payment at its gateway, read by the worker; bounded by payment_check_timeout."""
    try:
        return await client.execute_workflow(
            PaymentCheckWorkflow.run,
            query,
            id=payment_check_id(query.channel, query.payment_ref),
            task_queue=settings.task_queue,
            execution_timeout=settings.payment_check_timeout,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowFailureError as exc:
        raise _unchecked(query, exc) from exc


def _unchecked(query: PaymentQuery, exc: WorkflowFailureError) -> DomainError:
    """Why the payment could not be read: refused by the gateway (it cannot be shown paid), or
    not answered in time (nothing decided, the caller may retry)."""
    found = domain_error_from_temporal(exc)
    if isinstance(found, GatewayPermanentError):
        return PaymentNotFound(
            f"{query.channel} refused to show payment {query.payment_ref}: {found.message}"
        )
    if isinstance(found, GatewayUnavailable):
        return found
    return GatewayUnavailable(
        f"{query.channel} was not asked about payment {query.payment_ref} in time: {exc.cause}"
    )


def _add(session: AsyncSession, body: OrderIn) -> None:
    order = Order(**body.model_dump(exclude={"items"}), refunded_amount=0, reserved_amount=0)
    order.items = [OrderItem(**i.model_dump()) for i in body.items]
    session.add(order)


async def _use_coupon(session: AsyncSession, body: OrderIn) -> None:
    if not body.coupon_code:
        return
    await session.execute(
        insert(Coupon)
        .values(code=body.coupon_code, user_id=body.user_id, status="used", order_no=body.order_no)
        .on_conflict_do_update(
            index_elements=["code"],
            set_={
                "status": "used",
                "order_no": body.order_no,
                "user_id": body.user_id,
                "updated_at": datetime.now(UTC),
            },
        )
    )


async def cancel_order(session: AsyncSession, order: Order) -> Order:
    """pending → cancelled; refunded → cancelled; a paid order must be refunded first (409)."""
    locked = await OrderRepository(session).get(order.order_no, lock=True)
    if locked.status == "cancelled":
        return locked
    if locked.status not in ("pending", "refunded"):
        raise OrderNotCancellable(
            f"order {locked.order_no} is {locked.status}: refund it fully before cancelling"
        )
    locked.status = "cancelled"
    locked.updated_at = datetime.now(UTC)
    await session.commit()
    return locked
