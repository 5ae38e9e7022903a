"""The chaos checks can fail: a consistent world passes, and each kind of damage is named with
the refund (or order) it hit. A check that cannot fail would prove nothing."""

from __future__ import annotations

from typing import Any

import pytest

from refunds.cli.chaos_checks import GatewayRefund, Problem, Snapshot, check_events, run_checks
from refunds.cli.chaos_plan import ChaosPlan, make_plan


def world(plan: ChaosPlan) -> Snapshot:
    """What a correct run leaves: planned failures failed, everything else refunded once."""
    snap = Snapshot(orders={}, refunds={})
    for order in plan.orders:
        ok = [r for r in order.refunds if not r.gateway_fails]
        refunded = sum(r.amount for r in ok)
        whole = refunded == order.amount
        snap.orders[order.order_no] = {
            "paid_amount": order.amount,
            "refunded_amount": refunded,
            "reserved_amount": refunded,
            "points_used": order.points_used,
            "coupon_code": order.coupon_code,
            "payment_ref": f"pay-{order.order_no}",
            "fulfillment": "unfulfilled",
            "items": [{"sku": i.sku, "quantity": i.quantity} for i in order.items],
        }
        if order.coupon_code:
            by = ok[-1].refund_no if whole else None
            snap.coupons[order.coupon_code] = {
                "status": "available" if whole else "used",
                "released_by_refund_no": by,
            }
        for n, refund in enumerate(order.refunds):
            status = "failed" if refund.gateway_fails else "succeeded"
            items = [{"sku": s, "quantity": q} for s, q in refund.items.items()]
            snap.refunds[refund.refund_no] = {
                "refund_no": refund.refund_no,
                "order_no": order.order_no,
                "amount": refund.amount,
                "status": status,
                "items": items,
            }
            snap.gateway.append(
                GatewayRefund(
                    refund.refund_no, f"pay-{order.order_no}", refund.amount, status, f"g{n}"
                )
            )
            if status == "succeeded":
                last = whole and refund is ok[-1]
                snap.restorations[refund.refund_no] = {"points", "inventory", "coupon"}
                snap.points[refund.refund_no] = [order.points_used if last else 0]
                named = refund.items or {i.sku: i.quantity for i in order.items}
                snap.movements[refund.refund_no] = named
    return snap


@pytest.fixture
def plan() -> ChaosPlan:
    return make_plan(30, 2, seed=7)


def problems(plan: ChaosPlan, snap: Snapshot) -> list[Problem]:
    return run_checks(plan, [r.refund_no for r in plan.refunds], snap)


def first_ok(plan: ChaosPlan) -> str:
    return next(r.refund_no for r in plan.refunds if not r.gateway_fails)


def test_a_consistent_run_has_no_problems(plan: ChaosPlan) -> None:
    assert problems(plan, world(plan)) == []


def test_a_refund_left_processing_is_lost(plan: ChaosPlan) -> None:
    snap = world(plan)
    snap.refunds[first_ok(plan)]["status"] = "processing"
    found = problems(plan, snap)
    assert any(p.kind == "lost" and p.refund_no == first_ok(plan) for p in found), found


def test_an_accepted_refund_without_a_row_is_lost(plan: ChaosPlan) -> None:
    snap = world(plan)
    del snap.refunds[first_ok(plan)]
    assert any(p.kind == "lost" and p.refund_no == first_ok(plan) for p in problems(plan, snap))


def test_two_gateway_refunds_for_one_refund_no_are_doubled(plan: ChaosPlan) -> None:
    snap = world(plan)
    first = next(g for g in snap.gateway if g.refund_no == first_ok(plan))
    snap.gateway.append(
        GatewayRefund(first.refund_no, first.payment_ref, first.amount, "succeeded", "x")
    )
    found = [p for p in problems(plan, snap) if p.kind == "doubled"]
    assert [p.refund_no for p in found] == [first_ok(plan)]


def test_a_gateway_refund_under_no_refund_no_of_ours_is_doubled(plan: ChaosPlan) -> None:
    snap = world(plan)
    payment = snap.gateway[0].payment_ref
    snap.gateway.append(GatewayRefund("stranger", payment, 100, "succeeded", "x"))
    assert any(p.kind == "doubled" for p in problems(plan, snap))


@pytest.mark.parametrize("gateway_status", ["failed", "processing"])
def test_succeeded_without_money_at_the_gateway_is_a_mismatch(
    plan: ChaosPlan, gateway_status: str
) -> None:
    snap = world(plan)
    no = first_ok(plan)
    snap.gateway = [
        GatewayRefund(g.refund_no, g.payment_ref, g.amount, gateway_status, g.gateway_id)
        if g.refund_no == no
        else g
        for g in snap.gateway
    ]
    assert any(p.kind == "money" and p.refund_no == no for p in problems(plan, snap))


def test_order_totals_that_disagree_with_the_refunds_are_a_mismatch(plan: ChaosPlan) -> None:
    snap = world(plan)
    order_no = plan.orders[0].order_no
    snap.orders[order_no]["reserved_amount"] += 1
    found = [p for p in problems(plan, snap) if p.kind == "money"]
    assert [p.order_no for p in found] == [order_no]


def test_a_missing_or_extra_restore_is_named(plan: ChaosPlan) -> None:
    snap = world(plan)
    no = first_ok(plan)
    snap.restorations[no].discard("coupon")
    failed = next(r.refund_no for r in plan.refunds if r.gateway_fails)
    snap.restorations[failed] = {"points"}
    found = {p.refund_no for p in problems(plan, snap) if p.kind == "restore"}
    assert found == {no, failed}


def test_a_failure_the_plan_did_not_cause_is_unplanned(plan: ChaosPlan) -> None:
    snap = world(plan)
    no = first_ok(plan)
    row: dict[str, Any] = snap.refunds[no]
    row["status"] = "failed"
    found = [p for p in problems(plan, snap) if p.kind == "unplanned_failure"]
    assert [p.refund_no for p in found] == [no]


def test_every_state_change_delivered_once_or_more_is_no_problem() -> None:
    received = {"rf-1": {1: {"evt_a"}, 2: {"evt_b"}, 3: {"evt_c"}}}
    assert check_events({"rf-1": 3}, received) == []


def test_a_state_change_never_delivered_is_an_event_lost() -> None:
    (problem,) = check_events({"rf-1": 3}, {"rf-1": {1: {"evt_a"}, 3: {"evt_c"}}})
    assert (problem.kind, problem.refund_no) == ("event_lost", "rf-1")


def test_an_event_beyond_the_changes_or_under_two_ids_is_invented() -> None:
    received = {"rf-1": {1: {"evt_a", "evt_x"}, 2: {"evt_b"}}, "rf-9": {1: {"evt_z"}}}
    kinds = [(p.kind, p.refund_no) for p in check_events({"rf-1": 1}, received)]
    assert kinds == [
        ("event_invented", "rf-1"),
        ("event_invented", "rf-1"),
        ("event_invented", "rf-9"),
    ]
