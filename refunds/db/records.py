"""The refund and order rows as the ledger steps read them: plain frozen values, read with one
SQLAlchemy Core statement each (issue 11). A step changes them in Python and writes the change
with `refunds.db.step_writes`, so its hot path pays for no ORM loading, identity map or flush.
The statements are built once, here: a step pays for neither building nor compiling them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from refunds.db.models import (
    Base,
    Coupon,
    InventoryMovement,
    InventoryStock,
    Order,
    OrderItem,
    PointsLedger,
    Refund,
    RefundEvent,
    Restoration,
)
from refunds.domain.approval_policy import PolicyDay, PolicyUse
from refunds.domain.errors import OrderNotFound, RefundNotFound
from refunds.domain.messages import RELEASED_STATUSES, RefundItem


def table(model: type[Base]) -> Table:
    """The model's table, for Core statements (SQLAlchemy types `__table__` loosely)."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


# The ledger's tables as Core sees them, for the hot paths that skip the ORM (issue 11).
refunds = table(Refund)
orders = table(Order)
order_items = table(OrderItem)
refund_events = table(RefundEvent)
restorations = table(Restoration)
points_ledger = table(PointsLedger)
coupons = table(Coupon)
inventory_stock = table(InventoryStock)
inventory_movements = table(InventoryMovement)


@dataclass(frozen=True)
class RefundRecord:
    """A `refunds` row (all but its surrogate id)."""

    refund_no: str
    order_no: str
    amount: int
    currency: str
    channel: str
    reason: str
    items: list[dict[str, Any]]
    source: str
    requested_by: str
    approved_by: str | None
    gateway_refund_id: str | None
    status: str
    needs_manual_return: bool
    request_fingerprint: str
    workflow_run_id: str | None
    gateway_status: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    event_sequence: int
    auto_approved: bool

    def item_list(self) -> list[RefundItem]:
        """The returned items as the workflow's messages carry them."""
        return [RefundItem(i["sku"], int(i["quantity"])) for i in self.items]


@dataclass(frozen=True)
class OrderRecord:
    """What the ledger steps need of an `orders` row."""

    id: int
    order_no: str
    user_id: str
    channel: str
    currency: str
    paid_amount: int
    payment_ref: str | None
    points_used: int
    coupon_code: str | None
    fulfillment: str
    status: str
    reserved_amount: int
    refunded_amount: int


def _columns(record: type[Any], of: Table) -> list[Any]:
    return [of.c[f.name] for f in fields(record)]


REFUND_COLUMNS = _columns(RefundRecord, refunds)
ORDER_COLUMNS = _columns(OrderRecord, orders)
_REFUND = select(*REFUND_COLUMNS).where(refunds.c.refund_no == bindparam("refund_no"))
_LOCK_REFUND = _REFUND.with_for_update()
_ORDER = select(*ORDER_COLUMNS).where(orders.c.order_no == bindparam("order_no"))
_LOCK_ORDER = _ORDER.with_for_update()
# `set_config` is computed in the row's projection, below the row lock: the timeout holds for
# this lock's wait already, and for every later one of the transaction.
_LOCK_ORDER_WITHIN = (
    select(
        *ORDER_COLUMNS,
        func.set_config("lock_timeout", bindparam("lock_timeout", type_=String), literal(True)),
    )
    .where(orders.c.order_no == bindparam("order_no"))
    .with_for_update(of=orders)
)

# The order an apply reserves on, locked, and whether its refund_no is taken already: a replay.
_LOCK_ORDER_TO_OPEN = (
    select(*ORDER_COLUMNS, exists().where(refunds.c.refund_no == bindparam("refund_no")))
    .where(orders.c.order_no == bindparam("order_no"))
    .with_for_update(of=orders)
)
_ORDER_ITEMS = (
    select(order_items.c.sku, order_items.c.quantity)
    .where(order_items.c.order_id == bindparam("order_id"))
    .order_by(order_items.c.id)
)
_REFUNDS_ITEMS = (
    select(refunds.c.status, refunds.c["items"])
    .where(refunds.c.order_no == bindparam("order_no"))
    .order_by(refunds.c.id)
)

_amount = bindparam("amount", type_=orders.c.reserved_amount.type)
# Conditional: the database refuses to reserve past paid_amount, whatever runs concurrently.
_RESERVE = (
    update(orders)
    .where(
        orders.c.id == bindparam("order_id"),
        orders.c.reserved_amount + _amount <= orders.c.paid_amount,
    )
    .values(reserved_amount=orders.c.reserved_amount + _amount, updated_at=bindparam("at"))
    .returning(orders.c.reserved_amount)
)


# The auto-approval policy's sums (`refunds.domain.approval_policy`). The lock is its own
# statement: at READ COMMITTED a statement reads the snapshot taken when it started, so sums read
# in the statement that waited for the lock would miss what the holder committed meanwhile.
_LOCK_POLICY = select(
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=String), 0))
)
_by_requester_on_day = and_(
    refunds.c.requested_by == bindparam("requested_by"),
    refunds.c.created_at >= bindparam("day_start"),
    refunds.c.created_at < bindparam("day_end"),
)
_by_order = refunds.c.order_no == bindparam("order_no")
_POLICY_USE = select(
    func.coalesce(func.sum(refunds.c.amount).filter(_by_order), 0).cast(BigInteger),
    func.coalesce(func.sum(refunds.c.amount).filter(_by_requester_on_day), 0).cast(BigInteger),
).where(
    refunds.c.auto_approved,
    refunds.c.currency == bindparam("currency"),
    refunds.c.status.not_in([s.value for s in RELEASED_STATUSES]),
    or_(_by_order, _by_requester_on_day),
)


def refund_of(row: Sequence[Any]) -> RefundRecord:
    return RefundRecord(*row[: len(REFUND_COLUMNS)])


def order_of(row: Sequence[Any]) -> OrderRecord:
    return OrderRecord(*row[: len(ORDER_COLUMNS)])


class Records:
    """The reads of the ledger steps, and the reservation an apply makes, over the caller's
    session (the caller commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find_refund(self, refund_no: str, *, lock: bool = False) -> RefundRecord | None:
        stmt = _LOCK_REFUND if lock else _REFUND
        row = (await self.session.execute(stmt, {"refund_no": refund_no})).first()
        return refund_of(row) if row is not None else None

    async def refund(self, refund_no: str, *, lock: bool = False) -> RefundRecord:
        """The refund; `lock` holds its row until the transaction ends (every status move)."""
        found = await self.find_refund(refund_no, lock=lock)
        if found is None:
            raise RefundNotFound(f"refund {refund_no} not found")
        return found

    async def order(
        self, order_no: str, *, lock: bool = False, lock_timeout_ms: int | None = None
    ) -> OrderRecord:
        """The order; with `lock_timeout_ms`, a lock this transaction cannot get that soon (this
        one or any later) fails it: a transient failure, retried."""
        if lock_timeout_ms is not None:
            stmt, params = _LOCK_ORDER_WITHIN, {"lock_timeout": f"{lock_timeout_ms}ms"}
        else:
            stmt, params = (_LOCK_ORDER if lock else _ORDER), {}
        row = (await self.session.execute(stmt, {"order_no": order_no, **params})).first()
        if row is None:
            raise OrderNotFound(f"order {order_no} not found")
        return order_of(row)

    async def order_to_open(self, order_no: str, refund_no: str) -> tuple[OrderRecord | None, bool]:
        """The order, locked (None if there is none), and whether `refund_no` exists already."""
        params = {"order_no": order_no, "refund_no": refund_no}
        row = (await self.session.execute(_LOCK_ORDER_TO_OPEN, params)).first()
        if row is None:
            return None, await self.find_refund(refund_no) is not None
        return order_of(row), bool(row[-1])

    async def order_items(self, order_id: int) -> list[tuple[str, int]]:
        """(sku, quantity) of each line of the order."""
        rows = await self.session.execute(_ORDER_ITEMS, {"order_id": order_id})
        return [(sku, int(quantity)) for sku, quantity in rows.all()]

    async def refunds_items(self, order_no: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """(status, items) of every refund of the order."""
        rows = await self.session.execute(_REFUNDS_ITEMS, {"order_no": order_no})
        return [(status, items) for status, items in rows.all()]

    async def lock_policy(self, key: str) -> None:
        """Hold the auto-approval policy's lock named `key` until the transaction ends."""
        await self.session.execute(_LOCK_POLICY, {"key": key})

    async def policy_use(
        self, order_no: str, requested_by: str, currency: str, day: PolicyDay
    ) -> PolicyUse:
        """What the policy approved already on the order, and by the requester on the day."""
        params = {
            "order_no": order_no,
            "requested_by": requested_by,
            "currency": currency,
            "day_start": day.start,
            "day_end": day.end,
        }
        order, requester_day = (await self.session.execute(_POLICY_USE, params)).one()
        return PolicyUse(int(order), int(requester_day))

    async def reserve(self, order_id: int, amount: int, at: datetime) -> bool:
        """Reserve `amount` on the order; False when that would pass its paid amount."""
        params = {"order_id": order_id, "amount": amount, "at": at}
        return (await self.session.execute(_RESERVE, params)).first() is not None
