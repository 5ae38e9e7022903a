"""What must hold after a chaos run, each rule a function returning the problems it found.

Inputs are plain snapshots (rows read from PostgreSQL, refunds listed by the sandboxes), so the
rules can be tested on hand-made data and never share code with what they check.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from refunds.cli.chaos_plan import ChaosPlan, RefundPlan

TERMINAL = frozenset({"succeeded", "failed", "rejected", "expired"})
RELEASED = frozenset({"rejected", "expired", "failed"})  # reservation given back
RESTORE_KINDS = frozenset({"points", "inventory", "coupon"})
REVERSAL = "reversal"  # the restores of a refund that failed after all, taken back
# Per-refund faults whose trace each has its own check (not check_faults_applied's).
OWN_CHECKS = frozenset({"late", "race", "foreign", "late_failure", "lookup_refused"})
# Findings that would move money or say it moved without the ledger: none is planned.
UNPLANNED_FINDINGS = frozenset(
    {"gateway_succeeded", "gateway_succeeded_after_failure", "repaired", "overdue"}
)
# The sandboxes' statuses in our words.
GATEWAY_STATUS = {
    "succeeded": "succeeded",
    "SUCCESS": "succeeded",
    "failed": "failed",
    "canceled": "failed",
    "CLOSED": "failed",
    "ABNORMAL": "abnormal",
}


@dataclass(frozen=True)
class Problem:
    # lost | doubled | money | restore | unplanned_failure | fault_not_applied | request |
    # event_lost | event_invented | reconciliation
    kind: str
    why: str
    refund_no: str | None = None
    order_no: str | None = None

    def __str__(self) -> str:
        where = self.refund_no or self.order_no or "-"
        return f"[{self.kind}] {where}: {self.why}"


@dataclass(frozen=True)
class GatewayRefund:
    refund_no: str | None
    payment_ref: str
    amount: int
    status: str  # succeeded | failed | processing | abnormal
    gateway_id: str


@dataclass
class Snapshot:
    """Rows of this run: `orders`/`refunds` by their numbers, the rest grouped by refund_no."""

    orders: dict[str, dict[str, Any]]
    refunds: dict[str, dict[str, Any]]
    restorations: dict[str, set[str]] = field(default_factory=dict)
    points: dict[str, list[int]] = field(default_factory=dict)
    movements: dict[str, dict[str, int]] = field(default_factory=dict)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    gateway: list[GatewayRefund] = field(default_factory=list)
    # What reversals took back, by refund_no: points rows, stock by sku (negative quantities).
    reversed_points: dict[str, list[int]] = field(default_factory=dict)
    reversed_movements: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class RaceRecord:
    """What the harness saw when its ops decision raced the gateway's word."""

    resolved: str  # the outcome ops asked for
    answer: int  # the API's status code
    code: str | None  # its error code, when refused
    settled: str  # what the gateway was made to say: succeeded | failed


@dataclass(frozen=True)
class Finding:
    kind: str
    refund_no: str | None
    subject: str


def gateway_status(raw: str) -> str:
    return GATEWAY_STATUS.get(raw, "processing")


def on_our_payments(snap: Snapshot) -> list[GatewayRefund]:
    """The gateway refunds of our orders' payments: another system's refund that carries one of
    our refund_nos on its own payment is no refund of ours, whatever its metadata says."""
    ours = {order["payment_ref"] for order in snap.orders.values()}
    return [seen for seen in snap.gateway if seen.payment_ref in ours]


def _ours_by_no(snap: Snapshot) -> dict[str | None, GatewayRefund]:
    return {seen.refund_no: seen for seen in on_our_payments(snap)}


# ---- lost -------------------------------------------------------------------------------------


def check_lost(accepted: list[str], snap: Snapshot) -> list[Problem]:
    """Every refund the API accepted is in the ledger and terminal."""
    problems = []
    for refund_no in accepted:
        row = snap.refunds.get(refund_no)
        if row is None:
            problems.append(Problem("lost", "accepted (202) but no row in refunds", refund_no))
        elif row["status"] not in TERMINAL:
            problems.append(Problem("lost", f"left {row['status']}", refund_no, row["order_no"]))
    return problems


# ---- the gateway's books against ours ---------------------------------------------------------


def check_gateway(snap: Snapshot, paid_offline: frozenset[str] = frozenset()) -> list[Problem]:
    """One gateway refund per refund_no, and the gateway's word agrees with our status, except
    where ops, after the gateway failed it late, resolved the refund as paid back offline."""
    by_no: dict[str | None, list[GatewayRefund]] = defaultdict(list)
    for seen in on_our_payments(snap):
        by_no[seen.refund_no].append(seen)
    problems = [
        Problem("doubled", f"gateway refund {s.gateway_id} carries no refund_no of ours")
        for no, found in by_no.items()
        if no not in snap.refunds
        for s in found
    ]
    for refund_no, row in snap.refunds.items():
        found = by_no.get(refund_no, [])
        problems += _one_refund_at_gateway(refund_no, row, found, refund_no in paid_offline)
    return problems


def _one_refund_at_gateway(
    refund_no: str, row: dict[str, Any], found: list[GatewayRefund], paid_offline: bool
) -> list[Problem]:
    order_no = row["order_no"]
    if len(found) > 1:
        ids = [f"{s.gateway_id}:{s.status}" for s in found]
        return [Problem("doubled", f"{len(found)} gateway refunds: {ids}", refund_no, order_no)]
    seen = found[0] if found else None
    if row["status"] == "succeeded":
        if seen is None:
            return [Problem("money", "succeeded but no refund at the gateway", refund_no, order_no)]
        if seen.amount != row["amount"] or seen.status not in (
            ("succeeded", "failed") if paid_offline else ("succeeded",)
        ):
            why = f"succeeded {row['amount']}, gateway says {seen.status} {seen.amount}"
            return [Problem("money", why, refund_no, order_no)]
    if row["status"] in RELEASED and seen is not None and seen.status == "succeeded":
        why = f"{row['status']} here, but the gateway refunded {seen.amount}"
        return [Problem("money", why, refund_no, order_no)]
    return []


# ---- order totals -----------------------------------------------------------------------------


def check_orders(snap: Snapshot) -> list[Problem]:
    """refunded = sum of succeeded <= paid; reserved = sum of refunds not released."""
    refunds_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in snap.refunds.values():
        refunds_of[row["order_no"]].append(row)
    problems = []
    for order_no, order in snap.orders.items():
        rows = refunds_of[order_no]
        succeeded = sum(r["amount"] for r in rows if r["status"] == "succeeded")
        reserved = sum(r["amount"] for r in rows if r["status"] not in RELEASED)
        facts = {
            "refunded_amount": (order["refunded_amount"], succeeded),
            "reserved_amount": (order["reserved_amount"], reserved),
        }
        for name, (have, want) in facts.items():
            if have != want:
                why = f"{name} {have}, its refunds say {want}: {_statuses(rows)}"
                problems.append(Problem("money", why, order_no=order_no))
        if order["refunded_amount"] > order["paid_amount"]:
            why = f"refunded {order['refunded_amount']} > paid {order['paid_amount']}"
            problems.append(Problem("money", why, order_no=order_no))
    return problems


def _statuses(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['refund_no']}={r['status']}:{r['amount']}" for r in rows]


# ---- restores ---------------------------------------------------------------------------------


def check_restores(snap: Snapshot) -> list[Problem]:
    problems = []
    for refund_no, row in snap.refunds.items():
        problems += _restores_of_refund(snap, refund_no, row)
    for order_no, order in snap.orders.items():
        problems += _restores_of_order(snap, order_no, order)
    return problems


def _restores_of_refund(snap: Snapshot, refund_no: str, row: dict[str, Any]) -> list[Problem]:
    kinds = snap.restorations.get(refund_no, set())
    points = snap.points.get(refund_no, [])
    moved = snap.movements.get(refund_no, {})
    order_no = row["order_no"]
    if REVERSAL in kinds:
        return _reversal_of_refund(snap, refund_no, row)
    if row["status"] != "succeeded":
        if kinds or points or moved:
            why = f"{row['status']} yet restored {sorted(kinds)}, points {points}, stock {moved}"
            return [Problem("restore", why, refund_no, order_no)]
        return []
    problems = []
    if kinds != RESTORE_KINDS:
        problems.append(Problem("restore", f"restorations {sorted(kinds)}", refund_no, order_no))
    if len(points) != 1:
        problems.append(Problem("restore", f"points ledger rows {points}", refund_no, order_no))
    expected = _expected_restock(snap.orders[order_no], row)
    if moved != expected:
        why = f"restocked {moved}, expected {expected}"
        problems.append(Problem("restore", why, refund_no, order_no))
    return problems


def _reversal_of_refund(snap: Snapshot, refund_no: str, row: dict[str, Any]) -> list[Problem]:
    """A refund that succeeded, then failed after all: restored once, and all of it taken back
    once (the order's stock never went below what the refund had put back)."""
    kinds = snap.restorations.get(refund_no, set())
    points = snap.points.get(refund_no, [])
    moved = snap.movements.get(refund_no, {})
    taken = snap.reversed_points.get(refund_no, [])
    unstocked = snap.reversed_movements.get(refund_no, {})
    wrong = []
    if row["status"] != "failed":
        wrong.append(f"restores taken back, but it is {row['status']}")
    if kinds != RESTORE_KINDS | {REVERSAL}:
        wrong.append(f"restorations {sorted(kinds)}")
    if len(points) != 1 or taken != [-p for p in points if p]:
        wrong.append(f"points restored {points}, taken back {taken}")
    if unstocked != {sku: -q for sku, q in moved.items() if q}:
        wrong.append(f"restocked {moved}, unstocked {unstocked}")
    return [Problem("restore", w, refund_no, row["order_no"]) for w in wrong]


def _expected_restock(order: dict[str, Any], refund: dict[str, Any]) -> dict[str, int]:
    """The refund's items; a whole-order refund naming none puts back every item."""
    if order["fulfillment"] != "unfulfilled":
        return {}
    named = {i["sku"]: int(i["quantity"]) for i in refund["items"]}
    if not named and refund["amount"] == order["paid_amount"]:
        return {i["sku"]: int(i["quantity"]) for i in order["items"]}
    return named


def _restores_of_order(snap: Snapshot, order_no: str, order: dict[str, Any]) -> list[Problem]:
    succeeded = [
        no
        for no, r in snap.refunds.items()
        if r["order_no"] == order_no and r["status"] == "succeeded"
    ]
    whole = order["refunded_amount"] == order["paid_amount"]
    points = sum(sum(snap.points.get(no, [])) for no in succeeded)
    problems = []
    if points > order["points_used"] or (whole and points != order["points_used"]):
        why = f"{points} points restored of {order['points_used']} used (whole refund: {whole})"
        problems.append(Problem("restore", why, order_no=order_no))
    code = order["coupon_code"]
    if code:
        coupon = snap.coupons.get(code, {})
        released = coupon.get("status") == "available"
        by = coupon.get("released_by_refund_no")
        if released != whole or (released and by not in succeeded):
            why = f"coupon {code} {coupon.get('status')} by {by}, order whole-refunded: {whole}"
            problems.append(Problem("restore", why, order_no=order_no))
    return problems


# ---- outcomes against the plan ----------------------------------------------------------------


def check_outcomes(plan: ChaosPlan, snap: Snapshot) -> list[Problem]:
    """A refund fails only when the plan made the gateway fail it (and the gateway did: at our
    payment, not another system's refund under the same refund_no)."""
    failed_at_gateway = {s.refund_no for s in on_our_payments(snap) if s.status == "failed"}
    problems = []
    for refund_no, row in snap.refunds.items():
        planned = plan.refund(refund_no)
        if row["status"] in ("rejected", "expired"):
            why = f"{row['status']}, but every refund was approved"
            problems.append(Problem("unplanned_failure", why, refund_no, row["order_no"]))
        if row["status"] != "failed":
            continue
        if planned is None or not planned.gateway_fails:
            why = "failed, but the plan did not make the gateway fail it"
            problems.append(Problem("unplanned_failure", why, refund_no, row["order_no"]))
        elif refund_no not in failed_at_gateway:
            why = "failed before the gateway failed it (planned failure not reached)"
            problems.append(Problem("unplanned_failure", why, refund_no, row["order_no"]))
    return problems


# ---- the harness checks itself ----------------------------------------------------------------


def check_faults_applied(
    refunds: list[RefundPlan],
    stripe_events: dict[str, list[dict[str, Any]]],
    wechat_notes: dict[str, list[dict[str, Any]]],
    gateway: list[GatewayRefund],
) -> list[Problem]:
    """Each armed per-refund fault left its trace at the sandbox, or the run proved nothing."""
    status = {s.refund_no: s.status for s in gateway}
    problems = []
    for refund in refunds:
        for fault in (f for f in refund.faults if f not in OWN_CHECKS):
            if fault == "fail":
                ok = status.get(refund.refund_no) == "failed"
            elif refund.channel == "stripe":
                ok = _stripe_trace(fault, stripe_events.get(refund.refund_no, []))
            else:
                ok = _wechat_trace(fault, wechat_notes.get(refund.refund_no, []))
            if not ok:
                why = f"{fault} armed but no trace of it at the {refund.channel} sandbox"
                problems.append(Problem("fault_not_applied", why, refund.refund_no))
    return problems


def check_late(refunds: list[RefundPlan], answered: list[str], snap: Snapshot) -> list[Problem]:
    """Each late refund turned abnormal, was answered by the gateway only then, and finished
    `succeeded` by itself (an abnormal one left waiting counts as lost in `check_lost`)."""
    problems = []
    for refund in refunds:
        if not refund.late:
            continue
        row = snap.refunds.get(refund.refund_no)
        if refund.refund_no not in answered:
            why = "late: never turned abnormal, so the gateway was never made to answer"
            problems.append(Problem("fault_not_applied", why, refund.refund_no))
        elif row is not None and row["status"] not in ("succeeded", "abnormal"):
            why = f"late: the gateway succeeded it after its deadline, but it ended {row['status']}"
            problems.append(Problem("money", why, refund.refund_no, refund.order_no))
    return problems


def _stripe_trace(fault: str, records: list[dict[str, Any]]) -> bool:
    if not records:
        return False
    if fault == "no_webhook":
        return all(r["suppressed"] for r in records)
    if fault == "duplicate":
        return any(len(r["deliveries"]) >= 2 for r in records)
    first = {r["event"]["type"]: _first_delivery(r) for r in records}
    created, updated = first.get("refund.created"), first.get("refund.updated")
    return created is not None and updated is not None and created >= updated


def _first_delivery(record: dict[str, Any]) -> float | None:
    times = [d["at"] for d in record["deliveries"]]
    return min(times) if times else None


def _wechat_trace(fault: str, notes: list[dict[str, Any]]) -> bool:
    if fault == "no_webhook":
        return not notes
    if fault == "duplicate":
        return any(n.get("duplicate") for n in notes)
    return any(n.get("stale") for n in notes)


def run_checks(plan: ChaosPlan, accepted: list[str], snap: Snapshot) -> list[Problem]:
    paid_offline = frozenset(
        r.refund_no
        for r in plan.refunds
        if "late_failure" in r.faults and r.resolve_as == "succeeded"
    )
    return (
        check_lost(accepted, snap)
        + check_gateway(snap, paid_offline)
        + check_orders(snap)
        + check_restores(snap)
        + check_outcomes(plan, snap)
    )


def check_events(
    changes: dict[str, int], received: dict[str, dict[int, set[str]]]
) -> list[Problem]:
    """Issue 13: each state change of a refund (its request, each status move on its timeline)
    reached the shop at least once, as sequence 1..N; no event beyond them, none with two ids."""
    problems: list[Problem] = []
    for refund_no, count in sorted(changes.items()):
        lane = received.get(refund_no, {})
        missing = [n for n in range(1, count + 1) if n not in lane]
        if missing:
            why = f"events {missing} of {count} state changes never delivered"
            problems.append(Problem("event_lost", why, refund_no))
        extra = sorted(n for n in lane if n > count or n < 1)
        if extra:
            why = f"events {extra} delivered for {count} state changes"
            problems.append(Problem("event_invented", why, refund_no))
        twice = sorted(n for n, ids in lane.items() if len(ids) > 1)
        if twice:
            problems.append(
                Problem("event_invented", f"sequences {twice} under two ids", refund_no)
            )
    for refund_no in sorted(set(received) - set(changes)):
        problems.append(Problem("event_invented", "events of a refund we have not", refund_no))
    return problems


# ---- ops decisions, foreign refunds, late failures, reconciliation ----------------------------


def check_races(
    refunds: list[RefundPlan], raced: dict[str, RaceRecord], snap: Snapshot
) -> list[Problem]:
    """Whatever ops asked while the gateway settled the refund, the ledger ends where the
    gateway's money went: paid at the gateway and `failed` here is money out and not counted."""
    at_gateway = _ours_by_no(snap)
    problems = []
    for refund in (r for r in refunds if r.race is not None):
        record = raced.get(refund.refund_no)
        seen = at_gateway.get(refund.refund_no)
        if record is None or seen is None or seen.status != record.settled:
            why = f"race: never settled at the gateway as planned (gateway: {seen})"
            problems.append(Problem("fault_not_applied", why, refund.refund_no))
            continue
        row = snap.refunds.get(refund.refund_no, {})
        if row.get("status") != record.settled:
            why = (
                f"ops asked {record.resolved} ({record.answer} {record.code}), the gateway "
                f"{record.settled} it, the ledger holds {row.get('status')}"
            )
            problems.append(Problem("money", why, refund.refund_no, refund.order_no))
    return problems


def check_foreign(
    refunds: list[RefundPlan], foreign: dict[str, str], snap: Snapshot
) -> list[Problem]:
    """Another system's refund under our refund_no (on its own payment) exists as planned, and
    ours ended exactly as if it did not: succeeded, its amount, at our payment."""
    by_id = {seen.gateway_id: seen for seen in snap.gateway}
    at_gateway = _ours_by_no(snap)
    problems = []
    for refund in (r for r in refunds if "foreign" in r.faults):
        other = by_id.get(foreign.get(refund.refund_no, ""))
        want = "failed" if refund.foreign_fails else "succeeded"
        if other is None or other.refund_no != refund.refund_no or other.status != want:
            why = f"foreign: no {want} refund under our refund_no elsewhere ({other})"
            problems.append(Problem("fault_not_applied", why, refund.refund_no))
        row = snap.refunds.get(refund.refund_no, {})
        ours = at_gateway.get(refund.refund_no)
        if (row.get("status"), row.get("amount")) != ("succeeded", refund.amount) or (
            ours is None or ours.status != "succeeded"
        ):
            why = f"foreign refund {other and other.status} moved ours: {row.get('status')}"
            problems.append(Problem("money", why, refund.refund_no, refund.order_no))
    return problems


def check_late_failures(refunds: list[RefundPlan], snap: Snapshot) -> list[Problem]:
    """Each refund the gateway failed days after its success ends as ops resolved it once
    reconciliation reopened it, with its restores taken back exactly when resolved failed."""
    at_gateway = _ours_by_no(snap)
    problems = []
    for refund in (r for r in refunds if "late_failure" in r.faults):
        seen = at_gateway.get(refund.refund_no)
        if seen is None or seen.status != "failed":
            why = f"late_failure: the gateway never failed it ({seen})"
            problems.append(Problem("fault_not_applied", why, refund.refund_no))
        row = snap.refunds.get(refund.refund_no, {})
        if row.get("status") != refund.resolve_as:
            why = f"late failure resolved {refund.resolve_as} by ops, ledger {row.get('status')}"
            problems.append(Problem("money", why, refund.refund_no, refund.order_no))
        reversed_ = REVERSAL in snap.restorations.get(refund.refund_no, set())
        if reversed_ != (refund.resolve_as == "failed"):
            why = f"resolved {refund.resolve_as}, restores taken back: {reversed_}"
            problems.append(Problem("restore", why, refund.refund_no, refund.order_no))
    return problems


def check_reconciliation(
    refunds: list[RefundPlan],
    first: list[Finding],
    second: list[Finding],
    failed_phases: list[str],
    moved: dict[str, tuple[str, str]],
) -> list[Problem]:
    """The first run (some lookups refused) reports each refused lookup, still finds every late
    failure and reports every foreign refund; the second reports those ops decided as
    `adjudicated` and moves nothing. Nothing else of the run's refunds is found."""
    planned = {
        kind: {r.refund_no for r in refunds if kind in r.faults}
        for kind in ("lookup_refused", "late_failure", "foreign")
    }
    problems = []
    if failed_phases:
        problems.append(Problem("reconciliation", f"phases given up: {failed_phases}"))
    problems += _findings_are(
        "first", first, planned["lookup_refused"], planned["late_failure"], set()
    )
    problems += _findings_are("second", second, set(), set(), planned["late_failure"])
    for run, found in (("first", first), ("second", second)):
        problems += [
            Problem("reconciliation", f"{run} run: {f.kind} {f.subject}", f.refund_no)
            for f in found
            if f.kind in UNPLANNED_FINDINGS
            or (f.kind == "mismatch" and f.refund_no not in planned["foreign"])
        ]
    problems += [
        Problem("reconciliation", f"second run moved it {was} -> {now}", refund_no)
        for refund_no, (was, now) in sorted(moved.items())
        if was != now
    ]
    return problems


def _findings_are(
    run: str,
    found: list[Finding],
    lookup_failed: set[str],
    gateway_failed: set[str],
    adjudicated: set[str],
) -> list[Problem]:
    problems = []
    for kind, want in (
        ("lookup_failed", lookup_failed),
        ("gateway_failed", gateway_failed),
        ("adjudicated", adjudicated),
    ):
        have = {f.refund_no for f in found if f.kind == kind}
        for refund_no in sorted(want - have, key=str):
            problems.append(Problem("reconciliation", f"{run} run: no {kind}", refund_no))
        for extra in sorted(have - want, key=str):
            problems.append(Problem("reconciliation", f"{run} run: unplanned {kind}", extra))
    return problems
