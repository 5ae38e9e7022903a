"""A ledger step's writes as one statement (issue 11). Each write is a part (a data-modifying
CTE); the step sends its parts together, in one round trip of the caller's transaction, so a
status move with its order's money, its timeline entry, its outgoing event and its deliveries is
one statement, and `complete_refund`'s restores ride with it.

A statement is built and compiled once per shape (which parts it has); a step binds only values,
a part's rows as one JSON array (SQLAlchemy compiles a many-row VALUES list at every execution).
PostgreSQL runs the parts of one statement in no set order, each seeing the rows as they were
before it (foreign keys are checked at its end): no part reads another's writes, no row is
written by two parts, and a step's timeline entries are one part, inserted in the order given.
No bind parameter is named like a column of a table the statement writes: SQLAlchemy would take
it for a value of that column (tests/db/test_step_writes.py checks every part).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    not_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from refunds.db.outbox import event_statement, refund_event, wake_later
from refunds.db.records import (
    REFUND_COLUMNS,
    RefundRecord,
    coupons,
    inventory_movements,
    inventory_stock,
    orders,
    points_ledger,
    refund_events,
    refunds,
    restorations,
)
from refunds.domain.messages import OrderStatus
from refunds.domain.outgoing import EventType

Detail = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """A timeline entry; one with a `dedupe_key` is written once, whatever retries it."""

    actor: str
    event: str
    detail: Detail
    dedupe_key: str | None = None


def _bind(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _new_refund() -> Any:
    return insert(refunds).values({c.name: _bind(f"new_{c.name}", c) for c in REFUND_COLUMNS})


_MOVED = ("status", "approved_by", "updated_at", "completed_at", "needs_manual_return")


def _move() -> Any:
    values = {name: _bind(f"move_{name}", refunds.c[name]) for name in _MOVED}
    values["event_sequence"] = _bind("move_event_sequence", refunds.c.event_sequence)
    return (
        update(refunds)
        .where(refunds.c.refund_no == _bind("move_refund_no", refunds.c.refund_no))
        .values(values)
    )


def _gateway() -> Any:
    return (
        update(refunds)
        .where(refunds.c.refund_no == _bind("gw_refund_no", refunds.c.refund_no))
        .values(
            gateway_refund_id=_bind("gw_refund_id", refunds.c.gateway_refund_id),
            gateway_status=_bind("gw_status", refunds.c.gateway_status),
        )
    )


def _owner() -> Any:
    return (
        update(refunds)
        .where(refunds.c.refund_no == _bind("owner_refund_no", refunds.c.refund_no))
        .values(workflow_run_id=_bind("owner_run_id", refunds.c.workflow_run_id))
    )


def _manual_return() -> Any:
    return (
        update(refunds)
        .where(refunds.c.refund_no == _bind("manual_refund_no", refunds.c.refund_no))
        .values(needs_manual_return=True)
    )


def _money() -> Any:
    """The order's money moves by deltas (the CHECKs refuse an over-refund), and its status
    follows: fully refunded → refunded, no longer fully refunded → paid. A cancelled order stays
    cancelled either way: it still takes refunds of what is owed."""
    refunded = orders.c.refunded_amount + _bind("money_refunded", orders.c.refunded_amount)
    full = and_(orders.c.paid_amount > 0, refunded == orders.c.paid_amount)
    return (
        update(orders)
        .where(orders.c.order_no == _bind("money_order_no", orders.c.order_no))
        .values(
            reserved_amount=orders.c.reserved_amount
            + _bind("money_reserved", orders.c.reserved_amount),
            refunded_amount=refunded,
            status=case(
                (and_(full, orders.c.status == OrderStatus.PAID.value), OrderStatus.REFUNDED.value),
                (
                    and_(not_(full), orders.c.status == OrderStatus.REFUNDED.value),
                    OrderStatus.PAID.value,
                ),
                else_=orders.c.status,
            ),
            updated_at=_bind("money_at", orders.c.updated_at),
        )
    )


def _rows(name: str) -> Any:
    """A part's rows, bound as one JSON array of objects, in the order given."""
    rows = func.jsonb_array_elements(bindparam(name, type_=JSONB)).table_valued(
        column("value", JSONB), with_ordinality="n"
    )
    return rows.render_derived(name=name)


def _claims() -> Any:
    """The (refund_no, kind) guard rows: no ON CONFLICT, so a restore claimed twice fails the
    whole step instead of restoring twice."""
    claim = _rows("claims")
    rows = select(
        _bind("claim_refund_no", restorations.c.refund_no),
        claim.c.value["kind"].astext,
        claim.c.value["detail"],
    ).order_by(claim.c.n)
    return insert(restorations).from_select(["refund_no", "kind", "detail"], rows)


def _points_row() -> Any:
    values = {
        c: _bind(f"points_{c}", points_ledger.c[c]) for c in ("user_id", "order_no", "refund_no")
    }
    values |= {"kind": "refund_restore", "points": _bind("points_points", points_ledger.c.points)}
    return insert(points_ledger).values(values)


def _restocked() -> Any:
    """(sku, quantity) of the stock back on hand, in sku order: every step locks stock rows so."""
    item = _rows("restocked")
    return item, item.c.value["sku"].astext, cast(item.c.value["quantity"].astext, Integer)


def _restock() -> Any:
    item, sku, quantity = _restocked()
    stmt = insert(inventory_stock).from_select(
        ["sku", "on_hand"], select(sku, quantity).order_by(item.c.n)
    )
    return stmt.on_conflict_do_update(
        index_elements=["sku"],
        set_={
            "on_hand": inventory_stock.c.on_hand + stmt.excluded.on_hand,
            "updated_at": _bind("restock_at", inventory_stock.c.updated_at),
        },
    )


def _movements_rows() -> Any:
    item, sku, quantity = _restocked()
    rows = select(
        sku,
        _bind("restock_order_no", inventory_movements.c.order_no),
        _bind("restock_refund_no", inventory_movements.c.refund_no),
        literal("refund_restock", String),
        quantity,
    ).order_by(item.c.n)
    columns = ["sku", "order_no", "refund_no", "kind", "quantity"]
    return insert(inventory_movements).from_select(columns, rows)


def _coupon() -> Any:
    return (
        update(coupons)
        .where(coupons.c.code == _bind("coupon_release_code", coupons.c.code))
        .values(
            status="available",
            released_by_refund_no=_bind("coupon_refund_no", coupons.c.released_by_refund_no),
            updated_at=_bind("coupon_at", coupons.c.updated_at),
        )
    )


def _timeline() -> Any:
    entry = _rows("entries")
    value = entry.c.value
    rows = select(
        _bind("timeline_refund_no", refund_events.c.refund_no),
        value["actor"].astext,
        value["event"].astext,
        value["detail"],
        value["dedupe_key"].astext,
    ).order_by(entry.c.n)  # ids in the order given: the timeline reads by id
    columns = ["refund_no", "actor", "event", "detail", "dedupe_key"]
    insert_rows = insert(refund_events).from_select(columns, rows)
    return insert_rows.on_conflict_do_nothing(index_elements=["dedupe_key"])


_PARTS: dict[str, Callable[[], Any]] = {
    "new_refund": _new_refund,
    "move": _move,
    "owner": _owner,
    "gateway": _gateway,
    "manual_return": _manual_return,
    "money": _money,
    "claims": _claims,
    "points": _points_row,
    "restock": _restock,
    "movements": _movements_rows,
    "coupon": _coupon,
    "timeline": _timeline,
}
EVENT = "event"  # the outbox's part: always the statement's main insert (it returns endpoints)


@lru_cache(maxsize=128)
def _statement(shape: tuple[str, ...]) -> Any:
    writes = [(name, _PARTS[name]()) for name in shape if name != EVENT]
    if EVENT in shape:
        return event_statement([part.cte(name) for name, part in writes])
    *ctes, (_, main) = writes
    return main.add_cte(*(part.cte(name) for name, part in ctes)) if ctes else main


class StepWrites:
    """Collects the writes of one step of one refund; `send` writes them all, with one
    statement. Timeline entries are written in the order they were added."""

    def __init__(self, refund_no: str) -> None:
        self.refund_no = refund_no
        self._shape: list[str] = []
        self._values: dict[str, Any] = {}
        self._entries: list[Entry] = []

    def _add(self, part: str, values: Mapping[str, Any]) -> None:
        if part in self._shape:
            raise ValueError(f"a step writes its {part} once")
        self._shape.append(part)
        self._values.update(values)

    def entry(self, entry: Entry) -> None:
        self._entries.append(entry)

    def new_refund(self, refund: RefundRecord) -> None:
        self._add("new_refund", {f"new_{c.name}": getattr(refund, c.name) for c in REFUND_COLUMNS})

    def move(self, refund: RefundRecord) -> None:
        """The refund's moved fields and its event sequence, as `refund` has them now."""
        values = {f"move_{name}": getattr(refund, name) for name in _MOVED}
        values["move_event_sequence"] = refund.event_sequence
        self._add("move", values | {"move_refund_no": self.refund_no})

    def owner(self, run_id: str) -> None:
        """The workflow run that owns the refund from now on."""
        self._add("owner", {"owner_run_id": run_id, "owner_refund_no": self.refund_no})

    def gateway(self, gateway_refund_id: str | None, status: str | None) -> None:
        values = {"gw_refund_id": gateway_refund_id, "gw_status": status}
        self._add("gateway", values | {"gw_refund_no": self.refund_no})

    def manual_return(self) -> None:
        self._add("manual_return", {"manual_refund_no": self.refund_no})

    def money(self, order_no: str, reserved: int, refunded: int, at: datetime) -> None:
        """The order's reserved and refunded amounts move by these deltas (none: no write)."""
        if reserved or refunded:
            values = {"money_reserved": reserved, "money_refunded": refunded, "money_at": at}
            self._add("money", values | {"money_order_no": order_no})

    def claims(self, details: Mapping[str, Detail]) -> None:
        """The restores' guard rows, kind → the detail of what each did."""
        if details:
            rows = [{"kind": kind, "detail": detail} for kind, detail in details.items()]
            self._add("claims", {"claims": rows, "claim_refund_no": self.refund_no})

    def points(self, user_id: str, order_no: str, points: int) -> None:
        values = {"user_id": user_id, "order_no": order_no, "refund_no": self.refund_no}
        values = {f"points_{k}": v for k, v in values.items()}
        self._add("points", values | {"points_points": points})

    def restock(self, order_no: str, items: Mapping[str, int], at: datetime) -> None:
        """Stock back on hand (sku → quantity) and its movements."""
        if items:
            rows = [{"sku": sku, "quantity": items[sku]} for sku in sorted(items)]
            values = {"restock_order_no": order_no, "restock_refund_no": self.refund_no}
            self._add("restock", values | {"restocked": rows, "restock_at": at})
            self._add("movements", {})

    def release_coupon(self, code: str, at: datetime) -> None:
        values = {"coupon_release_code": code, "coupon_refund_no": self.refund_no}
        self._add("coupon", values | {"coupon_at": at})

    def event(self, refund: RefundRecord, event_type: EventType) -> None:
        """The shops' event of this change, and its deliveries (issue 13)."""
        self._add(EVENT, refund_event(refund, event_type))

    async def send(self, session: AsyncSession) -> None:
        """Write everything collected, in the caller's transaction (which commits)."""
        if self._entries:
            rows = [
                {"actor": e.actor, "event": e.event, "detail": e.detail, "dedupe_key": e.dedupe_key}
                for e in self._entries
            ]
            self._add("timeline", {"entries": rows, "timeline_refund_no": self.refund_no})
        if not self._shape:
            return
        result = await session.execute(_statement(tuple(self._shape)), self._values)
        if EVENT in self._shape:
            wake_later(session, result.scalars().all())
