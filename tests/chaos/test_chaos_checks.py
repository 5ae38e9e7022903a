"""The chaos checks can fail: a consistent world passes, and each kind of damage is named with
the refund (or order) it hit. A check that cannot fail would prove nothing."""

from __future__ import annotations

from typing import Any

import pytest

from refunds.cli.chaos_checks import (
    Finding,
    GatewayRefund,
    Problem,
    RaceRecord,
    Snapshot,
    check_events,
    check_foreign,
    check_late_failures,
    check_races,
    check_reconciliation,
    run_checks,
)
from refunds.cli.chaos_plan import ChaosPlan, RefundPlan, make_plan


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


# ---- ops races, foreign refunds, late failures, reconciliation --------------------------------


def planned(plan: ChaosPlan, fault: str) -> list[RefundPlan]:
    return [r for r in plan.refunds if fault in r.faults]


def at_gateway(snap: Snapshot, refund_no: str) -> GatewayRefund:
    return next(g for g in snap.gateway if g.refund_no == refund_no)


def set_gateway(snap: Snapshot, refund_no: str, status: str) -> None:
    snap.gateway = [
        GatewayRefund(g.refund_no, g.payment_ref, g.amount, status, g.gateway_id)
        if g.refund_no == refund_no
        else g
        for g in snap.gateway
    ]


def raced(plan: ChaosPlan) -> dict[str, RaceRecord]:
    return {
        r.refund_no: RaceRecord(r.race[0], 409, "gateway_refund_pending", r.race[1])
        for r in plan.refunds
        if r.race is not None
    }


def test_the_plan_gives_each_new_fault_its_share_on_its_gateway(plan: ChaosPlan) -> None:
    races = planned(plan, "race")
    assert {r.channel for r in races} == {"stripe", "wechatpay"}
    assert {r.race for r in races} == {
        ("failed", "succeeded"),
        ("failed", "failed"),
        ("succeeded", "succeeded"),
    }
    assert {r.channel for r in planned(plan, "foreign")} == {"stripe"}
    assert {r.foreign_fails for r in planned(plan, "foreign")} == {True, False}
    late = planned(plan, "late_failure")
    assert {r.resolve_as for r in late} == {"failed", "succeeded"}
    assert all(r.channel == "stripe" and "no_webhook" in r.faults for r in late)
    assert {r.channel for r in planned(plan, "lookup_refused")} == {"wechatpay"}
    assert make_plan(30, 2, seed=7).refunds[0].faults == plan.refunds[0].faults


def test_races_that_end_where_the_gateway_said_pass(plan: ChaosPlan) -> None:
    assert check_races(plan.refunds, raced(plan), world(plan)) == []


def test_a_race_ledger_failed_while_the_gateway_paid_is_money_out_uncounted(
    plan: ChaosPlan,
) -> None:
    snap = world(plan)
    paid = next(r for r in planned(plan, "race") if r.race == ("failed", "succeeded"))
    snap.refunds[paid.refund_no]["status"] = "failed"
    (problem,) = check_races(plan.refunds, raced(plan), snap)
    assert (problem.kind, problem.refund_no) == ("money", paid.refund_no)


def test_a_race_the_harness_never_played_proves_nothing(plan: ChaosPlan) -> None:
    records = raced(plan)
    skipped = next(iter(records))
    del records[skipped]
    (problem,) = check_races(plan.refunds, records, world(plan))
    assert (problem.kind, problem.refund_no) == ("fault_not_applied", skipped)


def elsewhere(plan: ChaosPlan, snap: Snapshot) -> dict[str, str]:
    """Another system's refund under each foreign refund_no, on its own payment."""
    made = {}
    for refund in planned(plan, "foreign"):
        status = "failed" if refund.foreign_fails else "succeeded"
        gateway_id = f"gx-{refund.refund_no}"
        snap.gateway.append(
            GatewayRefund(refund.refund_no, "pay-other", refund.amount, status, gateway_id)
        )
        made[refund.refund_no] = gateway_id
    return made


def test_a_foreign_refund_on_another_payment_is_neither_doubled_nor_ours(
    plan: ChaosPlan,
) -> None:
    snap = world(plan)
    made = elsewhere(plan, snap)
    assert problems(plan, snap) == []
    assert check_foreign(plan.refunds, made, snap) == []


def test_ours_moved_by_a_foreign_refund_is_a_money_problem(plan: ChaosPlan) -> None:
    snap = world(plan)
    made = elsewhere(plan, snap)
    moved = planned(plan, "foreign")[0].refund_no
    snap.refunds[moved]["status"] = "abnormal"
    found = [(p.kind, p.refund_no) for p in check_foreign(plan.refunds, made, snap)]
    assert found == [("money", moved)]


def test_a_foreign_failure_does_not_make_our_failure_planned(plan: ChaosPlan) -> None:
    snap = world(plan)
    elsewhere(plan, snap)
    failing = next(r for r in planned(plan, "foreign") if r.foreign_fails)
    snap.refunds[failing.refund_no]["status"] = "failed"
    found = [
        (p.kind, p.refund_no) for p in problems(plan, snap) if p.refund_no == failing.refund_no
    ]
    assert ("unplanned_failure", failing.refund_no) in found


def late_failed_world(plan: ChaosPlan) -> Snapshot:
    """Each late failure failed at the gateway; the one ops resolved failed restored once and
    taken back once; the one resolved succeeded left as it was."""
    snap = world(plan)
    for refund in planned(plan, "late_failure"):
        set_gateway(snap, refund.refund_no, "failed")
        if refund.resolve_as == "succeeded":
            continue
        order = next(o for o in plan.orders if o.order_no == refund.order_no)
        snap.restorations[refund.refund_no] = {"points", "inventory", "coupon", "reversal"}
        snap.points[refund.refund_no] = [order.points_used] if order.points_used else [0]
        snap.reversed_points[refund.refund_no] = [-p for p in snap.points[refund.refund_no] if p]
        named = refund.items or {i.sku: i.quantity for i in order.items}
        snap.movements[refund.refund_no] = named
        snap.reversed_movements[refund.refund_no] = {s: -q for s, q in named.items()}
    return snap


def test_late_failures_resolved_by_ops_with_restores_taken_back_once_pass(
    plan: ChaosPlan,
) -> None:
    snap = late_failed_world(plan)
    assert problems(plan, snap) == []
    assert check_late_failures(plan.refunds, snap) == []


def test_restores_taken_back_twice_or_not_at_all_are_named(plan: ChaosPlan) -> None:
    snap = late_failed_world(plan)
    failed = next(r for r in planned(plan, "late_failure") if r.resolve_as == "failed")
    sku = next(iter(snap.movements[failed.refund_no]))
    snap.reversed_movements[failed.refund_no][sku] *= 2
    found = [(p.kind, p.refund_no) for p in problems(plan, snap)]
    assert found == [("restore", failed.refund_no)]
    snap.restorations[failed.refund_no].discard("reversal")
    kinds = [p.kind for p in check_late_failures(plan.refunds, snap)]
    assert kinds == ["restore"]


def test_a_late_failure_ops_resolved_succeeded_may_disagree_with_the_gateway(
    plan: ChaosPlan,
) -> None:
    snap = late_failed_world(plan)
    kept = next(r for r in planned(plan, "late_failure") if r.resolve_as == "succeeded")
    assert at_gateway(snap, kept.refund_no).status == "failed"
    assert problems(plan, snap) == []
    snap.refunds[kept.refund_no]["status"] = "abnormal"
    found = {p.kind for p in check_late_failures(plan.refunds, snap)}
    assert found == {"money"}


def findings_of(plan: ChaosPlan) -> tuple[list[Finding], list[Finding]]:
    def of(kind: str, fault: str) -> list[Finding]:
        return [Finding(kind, r.refund_no, r.refund_no) for r in planned(plan, fault)]

    foreign = of("mismatch", "foreign")
    first = of("lookup_failed", "lookup_refused") + of("gateway_failed", "late_failure")
    return first + foreign, of("adjudicated", "late_failure") + foreign


def test_reconciliation_runs_that_found_what_was_planned_pass(plan: ChaosPlan) -> None:
    first, second = findings_of(plan)
    assert check_reconciliation(plan.refunds, first, second, [], {"x": ("failed", "failed")}) == []


def test_reconciliation_that_missed_or_invented_a_finding_is_named(plan: ChaosPlan) -> None:
    first, second = findings_of(plan)
    missed = next(f for f in first if f.kind == "lookup_failed")
    first.remove(missed)
    clean = next(r.refund_no for r in plan.refunds if not r.faults)
    first.append(Finding("gateway_succeeded_after_failure", clean, clean))
    second.append(Finding("mismatch", clean, "re_x"))
    found = check_reconciliation(
        plan.refunds, first, second, ["open"], {clean: ("failed", "abnormal")}
    )
    assert sorted((p.refund_no or "-", p.why) for p in found) == sorted(
        [
            ("-", "phases given up: ['open']"),
            (missed.refund_no, "first run: no lookup_failed"),
            (clean, f"first run: gateway_succeeded_after_failure {clean}"),
            (clean, "second run: mismatch re_x"),
            (clean, "second run moved it failed -> abnormal"),
        ]
    )
