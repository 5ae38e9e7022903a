"""Restoring what the order consumed: points, inventory, coupon (SPEC §3, §4 step 5).

Every restore claims its (refund_no, kind) ledger row in the same statement as its effect, so
a retried or repeated activity changes nothing the second time (and a restore claimed twice fails
the step instead of restoring twice). Each locks the order row first: refunds of one order
restore one at a time, which is what makes the proration exact. Every step locks rows in one
order: the refund, its order, the order's coupon, then stock rows by sku.

A restore is planned from what one read under the order lock returned (`refunds.db.restores`),
then written with its step's other writes (`refunds.db.step_writes`): `complete_refund` writes
the three restores and the refund's success in one statement (issue 11).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import RestoreSteps
from activities.errors import business_errors
from activities.ledger import plan_move, refuse_unheard, row_of
from activities.outbox import Relay, outbox_transaction
from activities.restore_reversal import take_back
from refunds.db.records import OrderRecord, Records, RefundRecord
from refunds.db.restores import (
    COUPON,
    INVENTORY,
    POINTS,
    REVERSAL,
    Detail,
    RestoreFacts,
    restore_facts,
)
from refunds.db.step_writes import Entry, StepWrites
from refunds.domain import activity_names as names
from refunds.domain.messages import RefundRow, RefundStatus, RestoreInput, RestoreResult, Step
from refunds.domain.money import prorated_points

log = logging.getLogger("refunds.restore")


@dataclass(frozen=True)
class Restore:
    """One restore as planned: its ledger row's detail and the effects written with it."""

    kind: str
    detail: Detail
    entry: Entry | None = None  # its timeline entry, if it did something worth one
    points: int | None = None  # a points_ledger row
    restock: dict[str, int] = field(default_factory=dict)  # sku → quantity back on hand
    manual_return: bool = False  # nothing restocked: the goods have left, ops take them back
    coupon: str | None = None  # the coupon released


def _entry(refund_no: str, event: str, detail: Detail) -> Entry:
    return Entry("system", event, dict(detail), f"{refund_no}:{event}")


def plan_points(refund: RefundRecord, order: OrderRecord, facts: RestoreFacts) -> Restore:
    points = prorated_points(
        order.points_used,
        order.paid_amount,
        refund.amount,
        facts.refunded_before,
        facts.restored_points,
    )
    # The refund whose money completes the order takes the remainder; remember which it is,
    # since that refund (and no other) releases the coupon.
    completes = int(facts.refunded_before + refund.amount >= order.paid_amount)
    detail: Detail = {"points": points, "user_id": order.user_id, "completes_order": completes}
    return Restore(POINTS, detail, _entry(refund.refund_no, "points_restored", detail), points)


def plan_inventory(refund: RefundRecord, order: OrderRecord, facts: RestoreFacts) -> Restore:
    if order.fulfillment != "unfulfilled":
        detail: Detail = {"fulfillment": order.fulfillment, "restocked": 0}
        entry = _entry(refund.refund_no, "needs_manual_return", detail)
        return Restore(INVENTORY, detail, entry, manual_return=True)
    items = {i["sku"]: int(i["quantity"]) for i in refund.items}
    if not items and refund.amount == order.paid_amount:
        items = dict(facts.ordered)
    detail = {"restocked": sum(items.values())}
    detail.update({f"sku:{sku}": qty for sku, qty in items.items()})
    restocked = _entry(refund.refund_no, "inventory_restocked", detail) if items else None
    return Restore(INVENTORY, detail, restocked, restock=items)


def plan_coupon(
    refund: RefundRecord, order: OrderRecord, facts: RestoreFacts, points: Detail | None
) -> Restore:
    """Released only by the refund whose success completes the order (SPEC §3), as its points
    restore found, and only if it is still used."""
    completes = points is not None and points.get("completes_order") == 1
    releases = completes and facts.coupon_status == "used"
    detail: Detail = {"coupon_code": order.coupon_code, "released": int(releases)}
    if not releases:
        return Restore(COUPON, detail)
    entry = _entry(refund.refund_no, "coupon_released", detail)
    return Restore(COUPON, detail, entry, coupon=order.coupon_code)


class RestoreActivities(RestoreSteps):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        lock_timeout: timedelta = timedelta(seconds=5),
        relay: Relay | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.relay = relay
        self.lock_timeout_ms = int(lock_timeout.total_seconds() * 1000)

    async def _begin(
        self, session: AsyncSession, refund_no: str, refund: RefundRecord | None = None
    ) -> tuple[RefundRecord, OrderRecord, RestoreFacts]:
        """Lock the order and read what the restores need. A lock we cannot get soon is a
        transient failure: the step fails and Temporal retries it."""
        records = Records(session)
        if refund is None:
            refund = await records.refund(refund_no)
        order = await records.order(refund.order_no, lock_timeout_ms=self.lock_timeout_ms)
        facts = await restore_facts(
            session, refund.refund_no, order.order_no, order.id, order.coupon_code
        )
        return refund, order, facts

    @activity.defn
    @business_errors
    async def complete_refund(self, step: Step) -> RefundRow:
        async with outbox_transaction(self.sessionmaker, self.relay) as session:
            refund = await Records(session).refund(step.facts.refund_no, lock=True)
            if refund.status == RefundStatus.SUCCEEDED:
                return row_of(refund)  # done, restores with it
            refuse_unheard(refund, step)
            refund, order, facts = await self._begin(session, refund.refund_no, refund)
            writes = StepWrites(refund.refund_no)
            restores = plan_all(refund, order, facts, (POINTS, INVENTORY, COUPON))
            refund = write_restores(writes, refund, order, restores)
            refund = plan_move(refund, replace(step, to_status=RefundStatus.SUCCEEDED), writes)
            await writes.send(session)
            return row_of(refund)

    @activity.defn
    @business_errors
    async def take_back_restores(self, step: Step) -> RefundRow:
        async with outbox_transaction(self.sessionmaker, self.relay) as session:
            refund = await Records(session).refund(step.facts.refund_no, lock=True)
            if step.to_status is None or refund.status != step.to_status:
                writes = StepWrites(refund.refund_no)
                await self._reversal(session, writes, refund.refund_no, refund)
                if step.to_status is not None:
                    refund = plan_move(refund, step, writes)
                await writes.send(session)
            return row_of(refund)

    # ---- the first workflow type's activities (kept until its runs drain) ------------------

    @activity.defn(name=names.RESTORE_POINTS)
    @business_errors
    async def restore_points(self, entry: RestoreInput) -> RestoreResult:
        return await self._one(entry.refund_no, POINTS)

    @activity.defn(name=names.RESTORE_INVENTORY)
    @business_errors
    async def restore_inventory(self, entry: RestoreInput) -> RestoreResult:
        return await self._one(entry.refund_no, INVENTORY)

    @activity.defn(name=names.RELEASE_COUPON)
    @business_errors
    async def release_coupon(self, entry: RestoreInput) -> RestoreResult:
        """Released only when this refund's success completes the order (SPEC §3)."""
        return await self._one(entry.refund_no, COUPON)

    async def _one(self, refund_no: str, kind: str) -> RestoreResult:
        """One restore in its own transaction, as the first workflow type runs them."""
        async with self.sessionmaker.begin() as session:
            refund, order, facts = await self._begin(session, refund_no)
            if kind in facts.done:
                return RestoreResult(refund_no, kind, False, dict(facts.done[kind]))
            writes = StepWrites(refund_no)
            (restore,) = plan_all(refund, order, facts, (kind,))
            write_restores(writes, refund, order, [restore])
            if restore.manual_return:
                writes.manual_return()
            await writes.send(session)
            return RestoreResult(refund_no, kind, True, restore.detail)

    @activity.defn(name=names.REVERSE_RESTORES)
    @business_errors
    async def reverse_restores(self, entry: RestoreInput) -> RestoreResult:
        """Take back what this refund restored: it ended failed after succeeding (SPEC §4)."""
        async with self.sessionmaker.begin() as session:
            writes = StepWrites(entry.refund_no)
            result = await self._reversal(session, writes, entry.refund_no)
            await writes.send(session)
            return result

    async def _reversal(
        self,
        session: AsyncSession,
        writes: StepWrites,
        refund_no: str,
        refund: RefundRecord | None = None,
    ) -> RestoreResult:
        refund, order, facts = await self._begin(session, refund_no, refund)
        if REVERSAL in facts.done:
            return RestoreResult(refund_no, REVERSAL, False, dict(facts.done[REVERSAL]))
        detail = await take_back(session, refund, order)
        writes.claims({REVERSAL: detail})
        writes.entry(_entry(refund_no, "restores_reversed", detail))
        log.info("restore_done", extra={"refund_no": refund_no, "kind": REVERSAL, "detail": detail})
        # Ops should see this one: the customer keeps nothing the failed refund gave back.
        log.warning("restores_reversed", extra={"refund_no": refund_no, "detail": detail})
        return RestoreResult(refund_no, REVERSAL, True, detail)


def plan_all(
    refund: RefundRecord, order: OrderRecord, facts: RestoreFacts, kinds: Sequence[str]
) -> list[Restore]:
    """The restores of `kinds` this refund has not claimed yet, in the order given."""
    planned: list[Restore] = []
    for kind in kinds:
        if kind in facts.done:
            continue
        if kind == POINTS:
            planned.append(plan_points(refund, order, facts))
        elif kind == INVENTORY:
            planned.append(plan_inventory(refund, order, facts))
        else:
            points = facts.done.get(POINTS) or next(
                (r.detail for r in planned if r.kind == POINTS), None
            )
            planned.append(plan_coupon(refund, order, facts, points))
    return planned


def write_restores(
    writes: StepWrites, refund: RefundRecord, order: OrderRecord, restores: Sequence[Restore]
) -> RefundRecord:
    """Each restore's effects and its claim into `writes`; returns the refund as they leave it."""
    now = datetime.now(UTC)
    for restore in restores:
        if restore.entry is not None:
            writes.entry(restore.entry)
        if restore.points is not None:
            writes.points(order.user_id, order.order_no, restore.points)
        if restore.restock:
            writes.restock(order.order_no, restore.restock, now)
        if restore.coupon is not None:
            writes.release_coupon(restore.coupon, now)
        if restore.manual_return:
            refund = replace(refund, needs_manual_return=True)
        log.info(
            "restore_done",
            extra={"refund_no": refund.refund_no, "kind": restore.kind, "detail": restore.detail},
        )
    writes.claims({r.kind: r.detail for r in restores})
    return refund
