"""RestoreActivities against the real PostgreSQL (SPEC §3, §4 step 5).

Rows are built directly through the ORM, the activity methods are called directly (they need no
worker: they never ask for activity.info()), and every ledger they touch is read back.
"""

from __future__ import annotations

import asyncio

import pytest

from activities.restore import RestoreActivities
from refunds.domain.messages import RestoreInput
from tests.activities.ledger_support import (
    Sessions,
    coupon_of,
    ledgers,
    points_of,
    run_all,
    seed_order,
    seed_refund,
    timeline,
)
from tests.factories import uid


@pytest.mark.parametrize("fulfillment", ["unfulfilled", "shipped"])
async def test_each_restore_run_twice_leaves_the_ledgers_as_after_one_run(
    sessionmaker: Sessions, restore: RestoreActivities, fulfillment: str
) -> None:
    sku_a, sku_b = uid("sku"), uid("sku")
    order = await seed_order(
        sessionmaker,
        points=250,
        coupon=True,
        fulfillment=fulfillment,
        items=[(sku_a, 2), (sku_b, 1)],
        stock={sku_a: 5},
    )
    refund_no = await seed_refund(sessionmaker, order, 10000)
    first = await run_all(restore, refund_no)
    after_one = await ledgers(sessionmaker, order)
    second = await run_all(restore, refund_no)
    assert await ledgers(sessionmaker, order) == after_one
    assert [r.applied for r in first] == [True, True, True]
    assert [r.applied for r in second] == [False, False, False]
    assert [r.detail for r in second] == [r.detail for r in first]
    assert after_one["points"] == [(refund_no, "refund_restore", 250)]
    assert after_one["coupon"] == [("available", refund_no)]
    assert [kind for _, kind, _ in after_one["restorations"]] == ["coupon", "inventory", "points"]


async def test_restore_run_twice_concurrently_restores_once(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku = uid("sku")
    order = await seed_order(sessionmaker, points=90, coupon=True, items=[(sku, 3)])
    refund_no = await seed_refund(sessionmaker, order, 10000)
    await asyncio.gather(run_all(restore, refund_no), run_all(restore, refund_no))
    state = await ledgers(sessionmaker, order)
    assert state["points"] == [(refund_no, "refund_restore", 90)]
    assert state["movements"] == [(refund_no, sku, 3)]
    assert state["stock"] == [(sku, 3)]
    assert state["coupon"] == [("available", refund_no)]


@pytest.mark.parametrize("order_of_refunds", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
async def test_points_across_three_partial_refunds_sum_to_points_used(
    sessionmaker: Sessions, restore: RestoreActivities, order_of_refunds: tuple[int, int, int]
) -> None:
    order = await seed_order(sessionmaker, paid=10000, points=100)
    amounts = [3333, 3333, 3334]
    refund_nos = [await seed_refund(sessionmaker, order, amount) for amount in amounts]
    for index in order_of_refunds:
        await run_all(restore, refund_nos[index])
        await run_all(restore, refund_nos[index])  # a retry restores nothing more
    shares = [await points_of(sessionmaker, no) for no in refund_nos]
    assert sum(shares) == 100
    for position, index in enumerate(order_of_refunds):
        floor_share = 100 * amounts[index] // 10000
        if position < 2:
            assert shares[index] == floor_share  # partial: proportional share, rounded down
        else:
            assert shares[index] == 100 - sum(shares[i] for i in order_of_refunds[:2])


@pytest.mark.parametrize("fulfillment", ["shipped", "delivered", "consumed"])
async def test_fulfilled_order_refund_restocks_nothing_and_needs_manual_return(
    sessionmaker: Sessions, restore: RestoreActivities, fulfillment: str
) -> None:
    sku = uid("sku")
    order = await seed_order(
        sessionmaker, fulfillment=fulfillment, items=[(sku, 2)], stock={sku: 7}
    )
    refund_no = await seed_refund(sessionmaker, order, 4000, items=[(sku, 1)])
    await run_all(restore, refund_no)
    state = await ledgers(sessionmaker, order)
    assert state["movements"] == []
    assert state["stock"] == [(sku, 7)]
    assert state["manual_return"] == [(refund_no, True)]
    assert timeline(state, refund_no).count("needs_manual_return") == 1
    assert "inventory_restocked" not in timeline(state, refund_no)


async def test_restock_follows_the_refund_items_only(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku_a, sku_b, sku_c = uid("sku"), uid("sku"), uid("sku")
    order = await seed_order(
        sessionmaker,
        items=[(sku_a, 3), (sku_b, 2), (sku_c, 1)],
        stock={sku_a: 10, sku_b: 4},
    )
    refund_no = await seed_refund(sessionmaker, order, 3000, items=[(sku_a, 2), (sku_c, 1)])
    await run_all(restore, refund_no)
    state = await ledgers(sessionmaker, order)
    assert state["movements"] == sorted([(refund_no, sku_a, 2), (refund_no, sku_c, 1)])
    assert state["stock"] == sorted([(sku_a, 12), (sku_b, 4), (sku_c, 1)])
    assert state["manual_return"] == [(refund_no, False)]
    assert "inventory_restocked" in timeline(state, refund_no)


async def test_full_refund_without_items_restocks_every_item(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku_a, sku_b = uid("sku"), uid("sku")
    order = await seed_order(sessionmaker, items=[(sku_a, 3), (sku_b, 1)], stock={sku_a: 1})
    refund_no = await seed_refund(sessionmaker, order, 10000)
    await run_all(restore, refund_no)
    state = await ledgers(sessionmaker, order)
    assert state["movements"] == sorted([(refund_no, sku_a, 3), (refund_no, sku_b, 1)])
    assert state["stock"] == sorted([(sku_a, 4), (sku_b, 1)])


async def test_partial_refund_without_items_restocks_nothing(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku = uid("sku")
    order = await seed_order(sessionmaker, items=[(sku, 3)], stock={sku: 2})
    refund_no = await seed_refund(sessionmaker, order, 9999)
    results = await run_all(restore, refund_no)
    state = await ledgers(sessionmaker, order)
    assert state["movements"] == []
    assert state["stock"] == [(sku, 2)]
    assert results[1].detail["restocked"] == 0
    assert "inventory_restocked" not in timeline(state, refund_no)


async def test_coupon_is_released_only_by_the_refund_that_completes_the_order(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    order = await seed_order(sessionmaker, points=10, coupon=True)
    first = await seed_refund(sessionmaker, order, 4000)
    second = await seed_refund(sessionmaker, order, 6000)
    first_results = await run_all(restore, first)
    assert await coupon_of(sessionmaker, order) == ("used", None)
    assert first_results[2].detail["released"] == 0
    second_results = await run_all(restore, second)
    assert await coupon_of(sessionmaker, order) == ("available", second)
    assert second_results[2].detail["released"] == 1
    state = await ledgers(sessionmaker, order)
    assert "coupon_released" not in timeline(state, first)
    assert timeline(state, second).count("coupon_released") == 1


async def test_partial_refund_does_not_release_the_coupon_when_another_refund_completes_it(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    """Two refunds in their restore step at once: only the completing one releases it."""
    order = await seed_order(sessionmaker, points=10, coupon=True)
    partial = await seed_refund(sessionmaker, order, 4000)
    completing = await seed_refund(sessionmaker, order, 6000)
    await restore.restore_points(RestoreInput(partial))
    await restore.restore_points(RestoreInput(completing))
    await restore.restore_inventory(RestoreInput(partial))
    await restore.release_coupon(RestoreInput(partial))
    assert await coupon_of(sessionmaker, order) == ("used", None)
    await restore.restore_inventory(RestoreInput(completing))
    await restore.release_coupon(RestoreInput(completing))
    assert await coupon_of(sessionmaker, order) == ("available", completing)


async def test_order_without_coupon_releases_nothing_and_records_the_restore(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    order = await seed_order(sessionmaker)
    refund_no = await seed_refund(sessionmaker, order, 10000)
    results = await run_all(restore, refund_no)
    assert results[2].detail == {"coupon_code": None, "released": 0}
    state = await ledgers(sessionmaker, order)
    assert [kind for _, kind, _ in state["restorations"]] == ["coupon", "inventory", "points"]
