"""Restoring what the order consumed: points, inventory, coupon (SPEC §3, §4 step 5).

Every restore claims its (refund_no, kind) ledger row in the same transaction as its effect, so
a retried or repeated activity changes nothing the second time. Each locks the order row first:
refunds of one order restore one at a time, which is what makes the proration exact.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from temporalio import activity

from activities.contracts import RestoreSteps
from activities.errors import business_errors
from activities.ledger import move_refund, row_of
from activities.outbox import Relay, outbox_transaction
from activities.restore_reversal import take_back
from refunds.db.models import Coupon, InventoryMovement, InventoryStock, Order, PointsLedger, Refund
from refunds.db.models import Restoration as RestorationRow
from refunds.db.repositories import OrderRepository, RefundRepository
from refunds.domain import activity_names as names
from refunds.domain.messages import RefundRow, RefundStatus, RestoreInput, RestoreResult, Step
from refunds.domain.money import prorated_points

POINTS, INVENTORY, COUPON = "points", "inventory", "coupon"
REVERSAL = "reversal"  # the restores of a refund that failed after all, taken back
log = logging.getLogger("refunds.restore")


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
        self, session: AsyncSession, refund_no: str, kind: str
    ) -> tuple[Refund, Order, RestoreResult | None]:
        """Lock the order; the third item is the earlier result when this restore already ran.
        Restores sharing a transaction (`complete_refund`) lock and read them once."""
        locked = session.info.get(("restored", refund_no))
        if locked is None:
            # A lock we cannot get soon is a transient failure: fail and let Temporal retry.
            await session.execute(text(f"SET LOCAL lock_timeout = {self.lock_timeout_ms}"))
            refund = await RefundRepository(session).get(refund_no)
            order = await OrderRepository(session).get(refund.order_no, lock=True)
            locked = session.info[("restored", refund_no)] = (refund, order)
        refund, order = locked
        done = await RefundRepository(session).restoration(refund_no, kind)
        earlier = RestoreResult(refund_no, kind, False, dict(done.detail)) if done else None
        return refund, order, earlier

    @activity.defn
    @business_errors
    async def complete_refund(self, step: Step) -> RefundRow:
        async with outbox_transaction(self.sessionmaker, self.relay) as session:
            refund = await RefundRepository(session).get(step.facts.refund_no, lock=True)
            if refund.status != RefundStatus.SUCCEEDED:  # else done, restores with it
                for restore in (self._points, self._inventory, self._coupon):
                    await restore(session, refund.refund_no)
                await move_refund(session, refund, replace(step, to_status=RefundStatus.SUCCEEDED))
            return row_of(refund)

    @activity.defn
    @business_errors
    async def take_back_restores(self, step: Step) -> RefundRow:
        async with outbox_transaction(self.sessionmaker, self.relay) as session:
            refund = await RefundRepository(session).get(step.facts.refund_no, lock=True)
            if step.to_status is None or refund.status != step.to_status:
                await self._reversal(session, refund.refund_no)
                if step.to_status is not None:
                    await move_refund(session, refund, step)
            return row_of(refund)

    # ---- the first workflow type's activities (kept until its runs drain) ------------------

    @activity.defn(name=names.RESTORE_POINTS)
    @business_errors
    async def restore_points(self, entry: RestoreInput) -> RestoreResult:
        async with self.sessionmaker.begin() as session:
            return await self._points(session, entry.refund_no)

    async def _points(self, session: AsyncSession, refund_no: str) -> RestoreResult:
        refund, order, earlier = await self._begin(session, refund_no, POINTS)
        if earlier is not None:
            return earlier
        refunded_before = await _amount_restored_for(session, order.order_no, POINTS)
        restored_before = await OrderRepository(session).restored_points(order.order_no)
        points = prorated_points(
            order.points_used,
            order.paid_amount,
            refund.amount,
            refunded_before,
            restored_before,
        )
        # The refund whose money completes the order takes the remainder; remember which it
        # is, since that refund (and no other) releases the coupon.
        completes = int(refunded_before + refund.amount >= order.paid_amount)
        detail: dict[str, str | int | None] = {
            "points": points,
            "user_id": order.user_id,
            "completes_order": completes,
        }
        await _claim(session, refund.refund_no, POINTS, detail)
        session.add(
            PointsLedger(
                user_id=order.user_id,
                order_no=order.order_no,
                refund_no=refund.refund_no,
                kind="refund_restore",
                points=points,
            )
        )
        await _timeline(session, refund.refund_no, "points_restored", detail)
        return RestoreResult(refund.refund_no, POINTS, True, detail)

    @activity.defn(name=names.RESTORE_INVENTORY)
    @business_errors
    async def restore_inventory(self, entry: RestoreInput) -> RestoreResult:
        async with self.sessionmaker.begin() as session:
            return await self._inventory(session, entry.refund_no)

    async def _inventory(self, session: AsyncSession, refund_no: str) -> RestoreResult:
        refund, order, earlier = await self._begin(session, refund_no, INVENTORY)
        if earlier is not None:
            return earlier
        if order.fulfillment != "unfulfilled":
            detail = await self._flag_manual_return(session, refund, order)
        else:
            detail = await self._restock(session, refund, order)
        await _claim(session, refund.refund_no, INVENTORY, detail)
        return RestoreResult(refund.refund_no, INVENTORY, True, detail)

    async def _flag_manual_return(
        self, session: AsyncSession, refund: Refund, order: Order
    ) -> dict[str, str | int | None]:
        refund.needs_manual_return = True
        detail: dict[str, str | int | None] = {"fulfillment": order.fulfillment, "restocked": 0}
        await _timeline(session, refund.refund_no, "needs_manual_return", detail)
        return detail

    async def _restock(
        self, session: AsyncSession, refund: Refund, order: Order
    ) -> dict[str, str | int | None]:
        items = {i["sku"]: int(i["quantity"]) for i in refund.items}
        if not items and refund.amount == order.paid_amount:
            items = {i.sku: i.quantity for i in order.items}
        for sku, quantity in sorted(items.items()):
            await session.execute(
                insert(InventoryStock)
                .values(sku=sku, on_hand=quantity)
                .on_conflict_do_update(
                    index_elements=["sku"],
                    set_={
                        "on_hand": InventoryStock.on_hand + quantity,
                        "updated_at": datetime.now(UTC),
                    },
                )
            )
            session.add(
                InventoryMovement(
                    sku=sku,
                    order_no=order.order_no,
                    refund_no=refund.refund_no,
                    kind="refund_restock",
                    quantity=quantity,
                )
            )
        detail: dict[str, str | int | None] = {"restocked": sum(items.values())}
        detail.update({f"sku:{sku}": qty for sku, qty in items.items()})
        if items:
            await _timeline(session, refund.refund_no, "inventory_restocked", detail)
        return detail

    @activity.defn(name=names.RELEASE_COUPON)
    @business_errors
    async def release_coupon(self, entry: RestoreInput) -> RestoreResult:
        """Released only when this refund's success completes the order (SPEC §3)."""
        async with self.sessionmaker.begin() as session:
            return await self._coupon(session, entry.refund_no)

    async def _coupon(self, session: AsyncSession, refund_no: str) -> RestoreResult:
        refund, order, earlier = await self._begin(session, refund_no, COUPON)
        if earlier is not None:
            return earlier
        points_step = await RefundRepository(session).restoration(refund.refund_no, POINTS)
        completes = points_step is not None and points_step.detail.get("completes_order") == 1
        detail: dict[str, str | int | None] = {"coupon_code": order.coupon_code, "released": 0}
        coupon = (
            await session.get(Coupon, order.coupon_code, with_for_update=True)
            if order.coupon_code
            else None
        )
        if coupon is not None and completes and coupon.status == "used":
            coupon.status = "available"
            coupon.released_by_refund_no = refund.refund_no
            coupon.updated_at = datetime.now(UTC)
            detail["released"] = 1
            await _timeline(session, refund.refund_no, "coupon_released", detail)
        await _claim(session, refund.refund_no, COUPON, detail)
        return RestoreResult(refund.refund_no, COUPON, True, detail)

    @activity.defn(name=names.REVERSE_RESTORES)
    @business_errors
    async def reverse_restores(self, entry: RestoreInput) -> RestoreResult:
        """Take back what this refund restored: it ended failed after succeeding (SPEC §4)."""
        async with self.sessionmaker.begin() as session:
            return await self._reversal(session, entry.refund_no)

    async def _reversal(self, session: AsyncSession, refund_no: str) -> RestoreResult:
        refund, order, earlier = await self._begin(session, refund_no, REVERSAL)
        if earlier is not None:
            return earlier
        detail = await take_back(session, refund, order)
        await _claim(session, refund.refund_no, REVERSAL, detail)
        await _timeline(session, refund.refund_no, "restores_reversed", detail)
        # Ops should see this one: the customer keeps nothing the failed refund gave back.
        log.warning("restores_reversed", extra={"refund_no": refund.refund_no, "detail": detail})
        return RestoreResult(refund.refund_no, REVERSAL, True, detail)


async def _amount_restored_for(session: AsyncSession, order_no: str, kind: str) -> int:
    """Sum of the refunds of this order that have passed the `kind` restore and were not taken
    back since: the money that has come back so far, whatever order the refunds finalize in."""
    reversal = aliased(RestorationRow)
    taken_back = exists().where(
        reversal.refund_no == Refund.refund_no, reversal.kind == REVERSAL
    )  # by primary key, per refund of this order
    stmt = (
        select(func.coalesce(func.sum(Refund.amount), 0))
        .join(RestorationRow, RestorationRow.refund_no == Refund.refund_no)
        .where(Refund.order_no == order_no, RestorationRow.kind == kind, ~taken_back)
    )
    return int((await session.execute(stmt)).scalar_one())


async def _claim(
    session: AsyncSession, refund_no: str, kind: str, detail: dict[str, str | int | None]
) -> None:
    """The (refund_no, kind) guard row; the caller's transaction commits it with the effect."""
    await RefundRepository(session).claim_restoration(refund_no, kind, detail)
    log.info("restore_done", extra={"refund_no": refund_no, "kind": kind, "detail": detail})


async def _timeline(
    session: AsyncSession, refund_no: str, event: str, detail: dict[str, str | int | None]
) -> None:
    await RefundRepository(session).add_event(
        refund_no, "system", event, dict(detail), dedupe_key=f"{refund_no}:{event}"
    )
