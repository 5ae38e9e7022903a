"""What a succeeded refund gives back, end to end through HTTP on the real stack (issue 5):
points, inventory and coupon (SPEC §3, §4 steps 5-6), and order cancellation."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.models import InventoryMovement, InventoryStock, PointsLedger, Restoration
from tests.factories import Shop, events, uid

Sessions = async_sessionmaker[AsyncSession]


async def refunded(shop: Shop, order: dict[str, Any], amount: int, **fields: Any) -> dict:
    """A refund requested by the customer, approved, and carried to `succeeded`."""
    refund = await shop.refund(order, amount, **fields)
    assert (await shop.approve(refund["refund_no"])).status_code == 200
    return await shop.wait_status(refund["refund_no"], "succeeded")


def items(*pairs: tuple[str, int, int]) -> list[dict[str, Any]]:
    return [{"sku": sku, "quantity": qty, "unit_amount": unit} for sku, qty, unit in pairs]


async def movements(sessionmaker: Sessions, order_no: str) -> list[tuple[str, str, int]]:
    async with sessionmaker() as session:
        stmt = select(
            InventoryMovement.refund_no, InventoryMovement.sku, InventoryMovement.quantity
        ).where(InventoryMovement.order_no == order_no)
        return sorted((no, sku, qty) for no, sku, qty in (await session.execute(stmt)).all())


async def on_hand(sessionmaker: Sessions, *skus: str) -> dict[str, int]:
    async with sessionmaker() as session:
        stmt = select(InventoryStock.sku, InventoryStock.on_hand).where(
            InventoryStock.sku.in_(skus)
        )
        return {sku: qty for sku, qty in (await session.execute(stmt)).all()}


async def points_rows(sessionmaker: Sessions, refund_no: str) -> list[int]:
    async with sessionmaker() as session:
        stmt = select(PointsLedger.points).where(PointsLedger.refund_no == refund_no)
        return list((await session.scalars(stmt)).all())


async def test_refund_of_unfulfilled_order_restocks_its_items_and_restores_its_points_share(
    shop: Shop, sessionmaker: Sessions
) -> None:
    sku_a, sku_b = uid("sku"), uid("sku")
    order = await shop.order(
        amount=10000, items=items((sku_a, 2, 3000), (sku_b, 1, 4000)), points_used=500
    )
    refund = await refunded(shop, order, 3000, items=[{"sku": sku_a, "quantity": 1}])
    after = await shop.get_order(order["order_no"])
    assert after["restocked_items"] == {sku_a: 1}
    assert after["restored_points"] == 500 * 3000 // 10000
    assert await movements(sessionmaker, order["order_no"]) == [(refund["refund_no"], sku_a, 1)]
    assert await on_hand(sessionmaker, sku_a, sku_b) == {sku_a: 1}
    assert await points_rows(sessionmaker, refund["refund_no"]) == [150]
    assert {"points_restored", "inventory_restocked"} <= set(events(refund))
    assert refund["needs_manual_return"] is False
    assert (after["status"], after["refunded_amount"]) == ("paid", 3000)


async def test_two_partials_completing_the_order_restore_all_points_and_release_the_coupon(
    shop: Shop,
) -> None:
    coupon = uid("cpn")
    order = await shop.order(amount=10000, points_used=333, coupon_code=coupon)
    assert order["coupon"] == {"code": coupon, "status": "used", "released_by_refund_no": None}
    first = await refunded(shop, order, 4000)
    middle = await shop.get_order(order["order_no"])
    assert middle["restored_points"] == 333 * 4000 // 10000
    assert middle["coupon"]["status"] == "used"
    assert "coupon_released" not in events(first)
    second = await refunded(shop, order, 6000)
    after = await shop.get_order(order["order_no"])
    assert after["restored_points"] == 333
    assert after["coupon"] == {
        "code": coupon,
        "status": "available",
        "released_by_refund_no": second["refund_no"],
    }
    assert events(second).count("coupon_released") == 1
    assert (after["status"], after["refunded_amount"], after["refundable_amount"]) == (
        "refunded",
        10000,
        0,
    )


async def test_refund_of_a_shipped_order_needs_manual_return_and_restocks_nothing(
    shop: Shop, sessionmaker: Sessions
) -> None:
    sku = uid("sku")
    order = await shop.order(amount=6000, items=items((sku, 3, 2000)), fulfillment="shipped")
    refund = await refunded(shop, order, 6000, items=[{"sku": sku, "quantity": 3}])
    assert refund["needs_manual_return"] is True
    assert events(refund).count("needs_manual_return") == 1
    assert "inventory_restocked" not in events(refund)
    after = await shop.get_order(order["order_no"])
    assert after["restocked_items"] == {}
    assert after["refunds"][0]["needs_manual_return"] is True
    assert await movements(sessionmaker, order["order_no"]) == []
    assert await on_hand(sessionmaker, sku) == {}


async def test_pending_order_is_cancelled_by_its_owner(shop: Shop) -> None:
    order = await shop.order(amount=2000, status="pending", paid_amount=0)
    assert order["status"] == "pending"
    response = await shop.http.post(f"/v1/orders/{order['order_no']}/cancel", headers=shop.customer)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    refund = await shop.request_refund(order, 100)
    assert refund.status_code == 409
    assert refund.json()["error"]["code"] == "order_not_paid"


async def test_paid_order_must_be_fully_refunded_before_it_is_cancelled(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    path = f"/v1/orders/{order['order_no']}/cancel"
    untouched = await shop.http.post(path, headers=shop.admin)
    assert untouched.status_code == 409
    assert untouched.json()["error"]["code"] == "order_not_cancellable_refund_first"
    await refunded(shop, order, 1000)
    partly = await shop.http.post(path, headers=shop.customer)
    assert partly.status_code == 409
    assert partly.json()["error"]["code"] == "order_not_cancellable_refund_first"
    assert (await shop.get_order(order["order_no"]))["status"] == "paid"
    await refunded(shop, order, 2000)
    assert (await shop.get_order(order["order_no"]))["status"] == "refunded"
    cancelled = await shop.http.post(path, headers=shop.customer)
    assert cancelled.status_code == 200, cancelled.text
    after = cancelled.json()
    assert (after["status"], after["refunded_amount"]) == ("cancelled", 3000)


async def lock_waiters(sessionmaker: Sessions, table: str) -> set[tuple[int, datetime]]:
    """(pid, transaction start) of every backend waiting for a lock on `table`."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT a.pid, a.xact_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.relation = CAST(:table AS regclass) AND NOT l.granted"
            ),
            {"table": table},
        )
        return {(pid, start) for pid, start in rows.all()}


async def wait_for(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        await asyncio.sleep(0.1)
    return found


async def test_restore_that_fails_on_a_held_lock_is_retried_and_restores_exactly_once(
    shop: Shop, sessionmaker: Sessions
) -> None:
    sku_a, sku_b = uid("sku"), uid("sku")
    order = await shop.order(
        amount=5000, items=items((sku_a, 1, 2000), (sku_b, 3, 1000)), points_used=120
    )
    refund_no = uid("rf")
    await shop.refund(order, 5000, refund_no=refund_no)
    async with sessionmaker() as blocker:
        # The points restore reads points_ledger: it waits, hits its 5 s lock_timeout and fails.
        await blocker.execute(text("LOCK TABLE points_ledger IN ACCESS EXCLUSIVE MODE"))
        assert (await shop.approve(refund_no)).status_code == 200
        first = await wait_for(lambda: lock_waiters(sessionmaker, "points_ledger"), 20, "a waiter")
        retried = await wait_for(
            lambda: _new_attempt(sessionmaker, first), 15, "a second restore attempt"
        )
        assert retried
        assert (await shop.get_refund(refund_no))["status"] == "processing"
        await blocker.rollback()
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert events(done).count("succeeded") == 1
    assert events(done).count("points_restored") == 1
    assert await points_rows(sessionmaker, refund_no) == [120]
    assert await movements(sessionmaker, order["order_no"]) == sorted(
        [(refund_no, sku_a, 1), (refund_no, sku_b, 3)]
    )
    async with sessionmaker() as session:
        kinds = await session.scalars(
            select(Restoration.kind).where(Restoration.refund_no == refund_no)
        )
        assert sorted(kinds.all()) == ["coupon", "inventory", "points"]
    after = await shop.get_order(order["order_no"])
    assert (after["status"], after["restored_points"]) == ("refunded", 120)
    assert after["restocked_items"] == {sku_a: 1, sku_b: 3}


async def _new_attempt(
    sessionmaker: Sessions, seen: set[tuple[int, datetime]]
) -> set[tuple[int, datetime]]:
    """Waiters in a transaction that was not waiting before: the failed attempt was retried."""
    return await lock_waiters(sessionmaker, "points_ledger") - seen
