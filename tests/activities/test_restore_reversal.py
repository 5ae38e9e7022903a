"""Taking restores back after a refund that had succeeded ends failed: once, as far as it goes,
and so that the order's next refunds restore exactly what is left (SPEC §3, §4)."""

from __future__ import annotations

from sqlalchemy import update

from activities.restore import RestoreActivities
from refunds.db.models import Coupon, InventoryStock, Order, Refund
from refunds.domain.messages import RestoreInput
from tests.activities.ledger_support import (
    Sessions,
    coupon_of,
    ledgers,
    run_all,
    seed_order,
    seed_refund,
    timeline,
)
from tests.factories import uid


async def test_reversal_takes_back_points_stock_and_coupon_once(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku = uid("sku")
    order = await seed_order(
        sessionmaker, points=300, coupon=True, items=[(sku, 2)], stock={sku: 5}
    )
    refund_no = await seed_refund(sessionmaker, order, 10000)
    await run_all(restore, refund_no)
    assert (await ledgers(sessionmaker, order))["stock"] == [(sku, 7)]

    first = await restore.reverse_restores(RestoreInput(refund_no))
    after_one = await ledgers(sessionmaker, order)
    second = await restore.reverse_restores(RestoreInput(refund_no))
    assert (first.applied, second.applied) == (True, False)
    assert second.detail == first.detail
    assert first.detail == {
        "points_taken_back": 300,
        "unstocked": 2,
        "unstock_shortfall": 0,
        "coupon_code": order.coupon_code,
        "coupon_taken_back": 1,
    }
    assert await ledgers(sessionmaker, order) == after_one
    assert after_one["points"] == sorted(
        [(refund_no, "refund_restore", 300), (refund_no, "refund_reversal", -300)]
    )
    assert after_one["stock"] == [(sku, 5)]
    assert after_one["movements"] == sorted([(refund_no, sku, 2), (refund_no, sku, -2)])
    assert after_one["coupon"] == [("used", None)]
    assert timeline(after_one, refund_no).count("restores_reversed") == 1


async def test_stock_sold_again_is_taken_back_only_as_far_as_it_goes(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku = uid("sku")
    order = await seed_order(sessionmaker, items=[(sku, 3)], stock={sku: 0})
    refund_no = await seed_refund(sessionmaker, order, 10000)
    await run_all(restore, refund_no)
    async with sessionmaker.begin() as session:  # two of the three restocked units sold since
        await session.execute(
            update(InventoryStock).where(InventoryStock.sku == sku).values(on_hand=1)
        )
    result = await restore.reverse_restores(RestoreInput(refund_no))
    assert result.detail["unstocked"] == 1
    assert (result.detail["unstock_shortfall"], result.detail[f"shortfall:{sku}"]) == (2, 2)
    state = await ledgers(sessionmaker, order)
    assert state["stock"] == [(sku, 0)]
    assert state["movements"] == sorted([(refund_no, sku, 3), (refund_no, sku, -1)])


async def test_coupon_used_again_since_is_left_with_its_new_order(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    order = await seed_order(sessionmaker, coupon=True)
    refund_no = await seed_refund(sessionmaker, order, 10000)
    await run_all(restore, refund_no)
    assert await coupon_of(sessionmaker, order) == ("available", refund_no)
    other_order = uid("ord")
    async with sessionmaker.begin() as session:
        await session.execute(
            update(Coupon)
            .where(Coupon.code == order.coupon_code)
            .values(status="used", order_no=other_order)
        )
    result = await restore.reverse_restores(RestoreInput(refund_no))
    assert (result.detail["coupon_taken_back"], result.detail["coupon_used_again"]) == (0, 1)
    async with sessionmaker() as session:
        coupon = await session.get(Coupon, order.coupon_code)
        assert coupon is not None
        assert (coupon.status, coupon.order_no) == ("used", other_order)


async def test_after_a_reversal_the_next_refunds_restore_exactly_what_is_left(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    order = await seed_order(sessionmaker, points=101, coupon=True)
    failed_later = await seed_refund(sessionmaker, order, 5000)
    await run_all(restore, failed_later)
    await restore.reverse_restores(RestoreInput(failed_later))
    async with sessionmaker.begin() as session:  # resolved failed: the workflow releases it
        await session.execute(
            update(Refund).where(Refund.refund_no == failed_later).values(status="failed")
        )
        await session.execute(
            update(Order).where(Order.order_no == order.order_no).values(reserved_amount=0)
        )

    # The reversed refund no longer counts as money back: this half does not complete the order.
    half = await seed_refund(sessionmaker, order, 5000)
    half_results = await run_all(restore, half)
    assert (half_results[0].detail["points"], half_results[0].detail["completes_order"]) == (50, 0)
    assert await coupon_of(sessionmaker, order) == ("used", None)
    rest = await seed_refund(sessionmaker, order, 5000)
    rest_results = await run_all(restore, rest)
    assert (rest_results[0].detail["points"], rest_results[0].detail["completes_order"]) == (51, 1)
    assert await coupon_of(sessionmaker, order) == ("available", rest)
    net = sum(points for _, _, points in (await ledgers(sessionmaker, order))["points"])
    assert net == 101
