"""The chaos run's plan, all drawn from one seed: orders, refunds, per-refund faults, kills.

The same seed gives the same shapes, amounts, faults and kill points; only the ids carry a fresh
run prefix, so a rerun against the same database never collides with an earlier one.
"""

from __future__ import annotations

import itertools
import random
import secrets
from dataclasses import dataclass, field

# What each per-refund fault is called at each sandbox (their existing refund faults).
FAULT_ACTIONS: dict[str, dict[str, str]] = {
    "duplicate": {"stripe": "duplicate_webhook", "wechatpay": "duplicate_notify"},
    "out_of_order": {"stripe": "out_of_order_webhooks", "wechatpay": "out_of_order"},
    "no_webhook": {"stripe": "no_webhook", "wechatpay": "no_notify"},
    "fail": {"stripe": "fail", "wechatpay": "closed"},
    # The gateway answers only after the outcome deadline made the refund abnormal (the harness
    # then succeeds it at the sandbox): an abnormal refund must still hear it and finish.
    "late": {"stripe": "pending_forever"},
    # Left unfinished at the gateway (Stripe pending, WeChat ABNORMAL) until the harness, as ops,
    # resolves it while the gateway settles it: the decision races the gateway's word.
    "race": {"stripe": "pending_forever", "wechatpay": "abnormal"},
}
# Faults the harness plays itself, with no sandbox action armed in advance.
HARNESS_FAULTS = frozenset({"foreign", "late_failure", "lookup_refused"})
# How a race ends: what ops ask for, and what the gateway then says.
RACES: tuple[tuple[str, str], ...] = (
    ("failed", "succeeded"),  # ops fail it as the gateway pays it: refused, then counted
    ("failed", "failed"),  # both say failed: it fails once, released once
    ("succeeded", "succeeded"),  # ops say paid offline as the gateway pays: counted once
)
# Cycled over the refunds in a seeded order: ~20% each webhook fault, ~40% clean.
WEBHOOK_FAULT_CYCLE: tuple[str | None, ...] = (
    "duplicate",
    "out_of_order",
    "no_webhook",
    None,
    None,
)
FAIL_SHARE = 0.08  # "a few" refunds the gateway fails
LATE_SHARE = 0.04  # Stripe refunds answered only after their outcome deadline
RACE_SHARE = 0.06  # refunds left unfinished whose ops decision races the gateway's
FOREIGN_SHARE = 0.04  # Stripe refunds whose refund_no another system also uses elsewhere
LATE_FAILURE_SHARE = 0.04  # Stripe refunds failed days after their success, webhooks lost
LOOKUP_REFUSED_SHARE = 0.03  # WeChat refunds whose lookup the reconciliation is refused
CURRENCY = {"stripe": "USD", "wechatpay": "CNY"}


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int
    unit_amount: int


@dataclass
class RefundPlan:
    refund_no: str
    order_no: str
    channel: str
    amount: int
    items: dict[str, int]
    faults: list[str] = field(default_factory=list)  # keys of FAULT_ACTIONS, HARNESS_FAULTS
    # "race": what ops resolve and what the gateway settles, and how far ahead the decision is
    # sent (negative: after the gateway's word).
    race: tuple[str, str] | None = None
    race_lead: float = 0.0
    # "foreign": whether the other system's refund under our refund_no is then failed.
    foreign_fails: bool = False
    # "late_failure": how ops resolve it once reconciliation reopened it.
    resolve_as: str | None = None

    @property
    def gateway_fails(self) -> bool:
        """The plan makes the gateway's last word about this refund a failure."""
        race_fails = self.race is not None and self.race[1] == "failed"
        late_failed = "late_failure" in self.faults and self.resolve_as == "failed"
        return "fail" in self.faults or race_fails or late_failed

    @property
    def clean(self) -> bool:
        """No outcome fault yet: free to carry one of the harness's faults."""
        taken = {"fail", "late", "race", *HARNESS_FAULTS}
        return not taken & set(self.faults)

    @property
    def late(self) -> bool:
        return "late" in self.faults

    def sandbox_actions(self) -> list[str]:
        return [FAULT_ACTIONS[f][self.channel] for f in self.faults if f in FAULT_ACTIONS]


@dataclass
class OrderPlan:
    order_no: str
    user_id: str
    channel: str
    amount: int
    items: list[Item]
    points_used: int
    coupon_code: str | None
    refunds: list[RefundPlan]

    @property
    def currency(self) -> str:
        return CURRENCY[self.channel]


@dataclass(frozen=True)
class KillPlan:
    after_approvals: int
    worker: int
    down_seconds: float


@dataclass
class ChaosPlan:
    run_id: str
    seed: int
    orders: list[OrderPlan]
    kills: list[KillPlan]
    every: int = 3
    actions: tuple[str, ...] = ("http_500", "timeout")

    @property
    def refunds(self) -> list[RefundPlan]:
        return [refund for order in self.orders for refund in order.refunds]

    def refund(self, refund_no: str) -> RefundPlan | None:
        return next((r for r in self.refunds if r.refund_no == refund_no), None)


def make_plan(count: int, workers: int, seed: int, kills: int = 2) -> ChaosPlan:
    rng = random.Random(seed)
    run_id = f"cx{seed}-{secrets.token_hex(3)}"
    orders: list[OrderPlan] = []
    while (planned := sum(len(o.refunds) for o in orders)) < count:
        two = count - planned >= 2 and rng.random() < 0.35
        orders.append(_order(rng, run_id, len(orders), two))
    refunds = [refund for order in orders for refund in order.refunds]
    _assign_faults(rng, refunds)
    return ChaosPlan(run_id, seed, orders, _kills(rng, count, workers, kills))


def _order(rng: random.Random, run_id: str, index: int, two_refunds: bool) -> OrderPlan:
    order_no = f"{run_id}-o{index}"
    channel = rng.choice(("stripe", "wechatpay"))
    unit = rng.randrange(5, 60) * 100
    items = [Item(f"{order_no}-a", 2, unit)]
    if rng.random() < 0.4:
        items.append(Item(f"{order_no}-b", 1, rng.randrange(3, 40) * 100))
    amount = sum(i.quantity * i.unit_amount for i in items)
    order = OrderPlan(
        order_no=order_no,
        user_id=f"{run_id}-u{index}",
        channel=channel,
        amount=amount,
        items=items,
        points_used=rng.choice((0, 0, 120, 250, 999)),
        coupon_code=f"{order_no}-cpn" if rng.random() < 0.3 else None,
        refunds=[],
    )
    order.refunds = _refunds_of(rng, order, two_refunds)
    return order


def _refunds_of(rng: random.Random, order: OrderPlan, two: bool) -> list[RefundPlan]:
    first = order.items[0]

    def refund(n: int, amount: int, items: dict[str, int]) -> RefundPlan:
        no = f"{order.order_no}-r{n}"
        return RefundPlan(no, order.order_no, order.channel, amount, items)

    if two:
        # Two refunds that together refund the whole order: the later success completes it.
        rest = {i.sku: (1 if i is first else i.quantity) for i in order.items}
        return [
            refund(0, first.unit_amount, {first.sku: 1}),
            refund(1, order.amount - first.unit_amount, rest),
        ]
    if rng.random() < 0.5:
        return [refund(0, order.amount, {})]  # whole order, no items named: all restocked
    return [refund(0, first.unit_amount, {first.sku: 1})]


def _assign_faults(rng: random.Random, refunds: list[RefundPlan]) -> None:
    shuffled = refunds[:]
    rng.shuffle(shuffled)
    for i, refund in enumerate(shuffled):
        fault = WEBHOOK_FAULT_CYCLE[i % len(WEBHOOK_FAULT_CYCLE)]
        if fault is not None:
            refund.faults.append(fault)
    rng.shuffle(shuffled)
    for refund in shuffled[: max(2, round(len(refunds) * FAIL_SHARE))]:
        refund.faults.append("fail")
    stripe = [r for r in shuffled if r.channel == "stripe" and not r.gateway_fails]
    for refund in stripe[: max(1, round(len(refunds) * LATE_SHARE))]:
        refund.faults.append("late")
    # The narrowest choice first: late failures need a Stripe refund alone on its order.
    _assign_late_failures(shuffled, _share(refunds, LATE_FAILURE_SHARE, 2))
    _assign_races(rng, shuffled, _share(refunds, RACE_SHARE, len(RACES) + 1))
    _assign_foreign(rng, shuffled, _share(refunds, FOREIGN_SHARE, 2))
    refused = [r for r in shuffled if r.channel == "wechatpay" and r.clean]
    for refund in refused[: _share(refunds, LOOKUP_REFUSED_SHARE, 2)]:
        refund.faults.append("lookup_refused")


def _share(refunds: list[RefundPlan], share: float, least: int) -> int:
    return max(least, round(len(refunds) * share))


def _assign_races(rng: random.Random, shuffled: list[RefundPlan], count: int) -> None:
    """Races taken from each gateway in turn, each ending cycled, the decision sent up to 0.3 s
    either side of the gateway's word."""
    by_channel = [[r for r in shuffled if r.clean and r.channel == c] for c in CURRENCY]
    turns = [r for pair in itertools.zip_longest(*by_channel) for r in pair if r is not None]
    for i, refund in enumerate(turns[:count]):
        refund.faults.append("race")
        refund.race = RACES[i % len(RACES)]
        refund.race_lead = round(rng.uniform(-0.3, 0.3), 2)


def _assign_foreign(rng: random.Random, shuffled: list[RefundPlan], count: int) -> None:
    """Stripe refunds with no webhook fault, else duplicated ones: the sandbox applies a
    refund_no's webhook faults to every refund carrying it, so the other's webhooks must reach
    us, and the out-of-order trace must be ours alone."""
    free = [r for r in shuffled if r.channel == "stripe" and r.clean]
    quiet = [r for r in free if not r.faults] + [r for r in free if r.faults == ["duplicate"]]
    for i, refund in enumerate(quiet[:count]):
        refund.faults.append("foreign")
        refund.foreign_fails = i % 2 == 0


def _assign_late_failures(shuffled: list[RefundPlan], count: int) -> None:
    """Stripe refunds alone on their order (a reversal then leaves the order with nothing
    refunded) whose webhooks are all lost, so only reconciliation can hear the late failure."""
    shared = {r.order_no for r in shuffled if r.refund_no.endswith("-r1")}
    alone = [
        r
        for r in shuffled
        if r.channel == "stripe"
        and r.clean
        and r.order_no not in shared
        and set(r.faults) <= {"no_webhook"}
    ]
    for i, refund in enumerate(alone[:count]):
        if "no_webhook" not in refund.faults:
            refund.faults.append("no_webhook")
        refund.faults.append("late_failure")
        refund.resolve_as = "failed" if i % 2 == 0 else "succeeded"


def _kills(rng: random.Random, count: int, workers: int, kills: int) -> list[KillPlan]:
    """Kill points spread over the approvals (one per slice), alternating workers."""
    plans = []
    for k in range(kills):
        low, high = (k + 0.3) / kills, (k + 0.8) / kills
        after = max(1, min(count, round(count * rng.uniform(low, high))))
        plans.append(KillPlan(after, k % workers, round(rng.uniform(1.0, 3.0), 1)))
    return plans
