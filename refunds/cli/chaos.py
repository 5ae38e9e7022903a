"""`refunds chaos`: show that the pipeline holds while its gateways and workers misbehave.

One run: real processes (PostgreSQL, Temporal, both sandboxes, the API, N workers); paid orders;
refunds requested by their customers and approved by someone else, all through the HTTP API;
meanwhile every third gateway API call fails (5xx, or a stall past the client timeout after the
gateway did the work), chosen refunds get duplicate, out-of-order or no notifications or are
failed by the gateway, and workers are SIGKILLed and restarted. Then every refund must be
terminal, at the gateway once, and agree with the orders, restores and the gateways' books.

Prints one line: `refunds=N kills=K faults=F lost=L doubled=D money_mismatches=M ...`; the
problems (with each refund's timeline) go to stderr and DIR/chaos-report.json.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from api.auth import issue_token
from refunds.cli import chaos_snapshot as read
from refunds.cli.chaos_checks import (
    TERMINAL,
    Problem,
    check_events,
    check_faults_applied,
    check_foreign,
    check_late,
    check_late_failures,
    check_races,
    check_reconciliation,
    on_our_payments,
    run_checks,
)
from refunds.cli.chaos_ops import OpsPlay, OpsRecord
from refunds.cli.chaos_plan import ChaosPlan, OrderPlan, RefundPlan, make_plan
from refunds.cli.chaos_stack import CHAOS_DELAY, CHAOS_TIMINGS, ChaosStack
from refunds.cli.chaos_webhooks import ChaosReceiver
from refunds.sandboxes.payments import pay_with_stripe, pay_with_wechatpay
from refunds.settings import Settings

APPROVER, ADMIN, OPS = "chaos-approver", "chaos-admin", "chaos-ops"
ATTEMPTS = 6  # a client's retries of one API call through 5xx answers and timeouts
TIMELINES_SHOWN = 25
# How long, once every refund is terminal, the shop's events may go without one more arriving,
# and how long they may take in all: a loaded machine delays deliveries, it must not lose them.
EVENTS_SETTLE_SECONDS = 90
EVENTS_SETTLE_CAP_SECONDS = 600


@dataclass
class ChaosOptions:
    refunds: int
    workers: int = 2
    seed: int = 1
    kills: int = 2
    concurrency: int = 8


@dataclass
class KillRecord:
    worker: int
    pid: int
    after_approvals: int
    in_flight: int  # refunds not yet terminal when it died
    down_seconds: float


@dataclass
class ChaosReport:
    plan: ChaosPlan
    accepted: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    chaos: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    timelines: dict[str, list[str]] = field(default_factory=dict)
    # Late refunds the harness answered at the gateway once they had turned abnormal.
    late_answered: list[str] = field(default_factory=list)
    # Distinct refund events the run's webhook receiver accepted.
    events_delivered: int = 0
    ops: OpsRecord = field(default_factory=OpsRecord)

    def count(self, *kinds: str) -> int:
        """Distinct refunds (or orders, for order-level problems) with a problem of a kind."""
        return len({p.refund_no or p.order_no or p.why for p in self.problems if p.kind in kinds})

    @property
    def chaos_hits(self) -> int:
        return sum(sum(c.get("hits", {}).values()) for c in self.chaos.values())

    @property
    def refund_faults(self) -> int:
        return sum(len(r.faults) for r in self.plan.refunds)

    @property
    def ok(self) -> bool:
        return not self.problems

    def planned(self, fault: str) -> set[str]:
        return {r.refund_no for r in self.plan.refunds if fault in r.faults}

    @property
    def late_failures_found(self) -> set[str]:
        return self.ops.found(0, "gateway_failed") & self.planned("late_failure")

    def line(self) -> str:
        return (
            f"refunds={len(self.plan.refunds)} kills={len(self.kills)} "
            f"faults={self.chaos_hits + self.refund_faults} lost={self.count('lost')} "
            f"doubled={self.count('doubled')} money_mismatches={self.count('money')} "
            f"restore_problems={self.count('restore')} "
            f"unplanned_failures={self.count('unplanned_failure')} "
            f"harness_problems={self.count('request', 'fault_not_applied')} "
            f"events_delivered={self.events_delivered} "
            f"events_lost={self.count('event_lost')} "
            f"events_invented={self.count('event_invented')} "
            f"races={len(self.ops.raced)} resolutions_refused={self.ops.refused} "
            f"foreign={len(self.ops.foreign)} "
            f"late_failures_found={len(self.late_failures_found)} "
            f"adjudicated={len(self.ops.found(1, 'adjudicated') & self.planned('late_failure'))} "
            f"lookups_refused={len(self.ops.found(0, 'lookup_failed'))} "
            f"reconciliation_problems={self.count('reconciliation')} "
            f"succeeded={self.statuses['succeeded']} failed={self.statuses['failed']} "
            f"seconds={self.seconds:.0f}"
        )


# ---- people -----------------------------------------------------------------------------------


class People:
    """Tokens: each order's customer, and an approver and admin who are other people."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.approver = self._headers(APPROVER, "approver")
        self.admin = self._headers(ADMIN, "admin")
        self.ops = self._headers(OPS, "ops")

    def customer(self, user_id: str) -> dict[str, str]:
        return self._headers(user_id, "customer")

    def _headers(self, sub: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.secret, sub, [role])}"}


class Progress:
    def __init__(self) -> None:
        self.approved = 0
        self.done = False

    async def reached(self, approvals: int) -> None:
        while self.approved < approvals and not self.done:
            await asyncio.sleep(0.05)


# ---- the run ----------------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, plan: ChaosPlan, stack: ChaosStack, options: ChaosOptions) -> None:
        self.plan, self.stack, self.options = plan, stack, options
        self.settings = Settings(data_dir=stack.data_dir, dev_secrets=True)
        assert self.settings.jwt_secret is not None
        self.people = People(self.settings.jwt_secret)
        self.report = ChaosReport(plan)
        self.progress = Progress()
        self.orders = {order.order_no: order for order in plan.orders}
        self.receiver = ChaosReceiver()
        self.payment_refs: dict[str, str] = {}
        self.play = OpsPlay(
            stack, self._ops_settings(), plan.run_id, self.people.ops, self.payment_refs
        )
        self.report.ops = self.play.record

    def _ops_settings(self) -> Settings:
        """The stack's own Temporal and task queue, for the reconciliation runs it starts."""
        return Settings(
            data_dir=self.stack.data_dir,
            dev_secrets=True,
            temporal_address=self.stack.temporal_address,
            task_queue=self.stack.task_queue,
        )

    async def run(self, http: httpx.AsyncClient) -> ChaosReport:
        self.receiver.start()
        try:
            return await self._run(http)
        finally:
            self.receiver.stop()

    async def _run(self, http: httpx.AsyncClient) -> ChaosReport:
        endpoint_id = await self._subscribe(http)
        await self._gather(self._create_order, self.plan.orders, http)
        foreign = [r for r in self.plan.refunds if "foreign" in r.faults]
        await asyncio.gather(*(self.play.pay_elsewhere(r) for r in foreign))
        await self._arm_refund_faults(http)
        await self._chaos(http, on=True)
        killer = asyncio.create_task(self._kill_schedule())
        await self._gather(self._request_and_approve, self.plan.refunds, http)
        self.progress.done = True
        self.report.kills = await killer
        late = asyncio.create_task(self._answer_late(http))
        await self._settle()
        await late
        await self._chaos(http, on=False)
        accepted = [r for r in self.plan.refunds if r.refund_no in self.report.accepted]
        await self.play.aftermath(accepted, http)
        await self._check(http)
        await self._check_events()
        await http.delete(f"/v1/webhook_endpoints/{endpoint_id}", headers=self.people.admin)
        return self.report

    async def _subscribe(self, http: httpx.AsyncClient) -> int:
        """The shop's endpoint on the run's receiver, for every event type (issue 13)."""
        body = {"url": self.receiver.url, "event_types": ["*"]}
        response = await _with_retries(
            lambda: http.post("/v1/webhook_endpoints", json=body, headers=self.people.admin)
        )
        response.raise_for_status()
        return int(response.json()["id"])

    async def _check_events(self) -> None:
        """Each state change delivered at least once, none invented: waited for while they
        keep arriving, bounded."""
        started = time.monotonic()
        deadline, missing = started + EVENTS_SETTLE_SECONDS, None
        while True:
            received = self.receiver.snapshot()
            # Every refund that was accepted or that the shop heard of: a refund whose request
            # answered an error may still exist, with its changes.
            refund_nos = sorted(set(self.report.accepted) | set(received))
            changes = await asyncio.to_thread(
                read.state_changes, self.stack.database_url, refund_nos
            )
            problems = check_events(changes, received)
            lost = [p for p in problems if p.kind == "event_lost"]
            now = time.monotonic()
            if missing is not None and len(lost) < missing:
                deadline = min(now + EVENTS_SETTLE_SECONDS, started + EVENTS_SETTLE_CAP_SECONDS)
            missing = len(lost)
            if not lost or now > deadline:
                break
            await asyncio.sleep(1.0)
        self.report.events_delivered = sum(len(lane) for lane in self.receiver.snapshot().values())
        self.report.problems += problems

    async def _gather(
        self,
        step: Callable[[Any, httpx.AsyncClient], Awaitable[None]],
        items: list[Any],
        http: httpx.AsyncClient,
    ) -> None:
        gate = asyncio.Semaphore(self.options.concurrency)

        async def guarded(item: Any) -> None:
            async with gate:
                await step(item, http)

        await asyncio.gather(*(guarded(item) for item in items))

    # ---- setup ----------------------------------------------------------------------------

    async def _create_order(self, order: OrderPlan, http: httpx.AsyncClient) -> None:
        """Paid for real at its sandbox (before chaos is on), then registered by an admin."""
        if order.channel == "stripe":
            assert self.settings.stripe_api_key is not None
            pay = (self.stack.stripe_url, self.settings.stripe_api_key, order.amount)
            ref = await asyncio.to_thread(pay_with_stripe, *pay, order.currency)
        else:
            ref = await asyncio.to_thread(
                pay_with_wechatpay, self.stack.wechat_url, order.amount, order.currency
            )
        self.payment_refs[order.order_no] = ref
        body = {
            "order_no": order.order_no,
            "user_id": order.user_id,
            "channel": order.channel,
            "currency": order.currency,
            "total_amount": order.amount,
            "paid_amount": order.amount,
            "payment_ref": ref,
            "items": [asdict(item) for item in order.items],
            "points_used": order.points_used,
            "coupon_code": order.coupon_code,
            "fulfillment": "unfulfilled",
            "status": "paid",
        }
        response = await http.post("/v1/orders", json=body, headers=self.people.admin)
        if response.status_code != 201:
            raise RuntimeError(f"order {order.order_no}: {response.status_code} {response.text}")

    async def _arm_refund_faults(self, http: httpx.AsyncClient) -> None:
        """Per-refund faults, armed before the refund exists (its refund_no is ours to choose)."""
        for refund in self.plan.refunds:
            for action in refund.sandbox_actions():
                if refund.channel == "stripe":
                    url = f"{self.stack.stripe_url}/_sandbox/faults"
                else:
                    url = f"{self.stack.wechat_url}/sandbox/faults"
                body = {"refund_no": refund.refund_no, "action": action}
                (await http.post(url, json=body)).raise_for_status()

    async def _chaos(self, http: httpx.AsyncClient, on: bool) -> None:
        urls = {
            "stripe": f"{self.stack.stripe_url}/_sandbox/chaos",
            "wechatpay": f"{self.stack.wechat_url}/sandbox/chaos",
        }
        spec = {"every": self.plan.every, "actions": list(self.plan.actions), "delay": CHAOS_DELAY}
        for name, url in urls.items():
            response = await (http.post(url, json=spec) if on else http.delete(url))
            response.raise_for_status()
            self.report.chaos[name] = response.json()

    # ---- refunds --------------------------------------------------------------------------

    async def _request_and_approve(self, refund: RefundPlan, http: httpx.AsyncClient) -> None:
        order = self.orders[refund.order_no]
        body = {
            "order_no": refund.order_no,
            "amount": refund.amount,
            "reason": "chaos",
            "refund_no": refund.refund_no,
            "items": [{"sku": sku, "quantity": q} for sku, q in refund.items.items()],
        }
        headers = self.people.customer(order.user_id)
        response = await _with_retries(lambda: http.post("/v1/refunds", json=body, headers=headers))
        if response.status_code != 202:
            self._problem("POST /v1/refunds", refund, response)
            return
        self.report.accepted.append(refund.refund_no)
        await self._approve(refund, http)
        if "foreign" in refund.faults:
            await self.play.refund_elsewhere(refund)

    async def _approve(self, refund: RefundPlan, http: httpx.AsyncClient) -> None:
        url = f"/v1/refunds/{refund.refund_no}/approve"
        response = await _with_retries(
            lambda: http.post(url, json={"note": "chaos"}, headers=self.people.approver)
        )
        if response.status_code == 409:
            # A retry after a lost answer: fine if the first attempt's approval is recorded.
            found = await http.get(f"/v1/refunds/{refund.refund_no}", headers=self.people.admin)
            if found.status_code == 200 and found.json().get("approved_by") == APPROVER:
                response = found
        if response.status_code != 200:
            self._problem("approve", refund, response)
            return
        self.progress.approved += 1

    def _problem(self, what: str, refund: RefundPlan, response: httpx.Response) -> None:
        why = f"{what}: {response.status_code} {response.text[:300]}"
        self.report.problems.append(Problem("request", why, refund.refund_no, refund.order_no))

    async def _kill_schedule(self) -> list[KillRecord]:
        """SIGKILL a worker at each planned point of the approvals, restart it after a pause."""
        records = []
        for kill in self.plan.kills:
            await self.progress.reached(kill.after_approvals)
            busy = await asyncio.to_thread(
                read.in_flight, self.stack.database_url, self.report.accepted[:]
            )
            pid = self.stack.kill_worker(kill.worker)
            await asyncio.sleep(kill.down_seconds)
            self.stack.restart_worker(kill.worker)
            records.append(
                KillRecord(kill.worker, pid, self.progress.approved, busy, kill.down_seconds)
            )
        return records

    async def _answer_late(self, http: httpx.AsyncClient) -> None:
        """Once a late or racing refund turned abnormal: succeed a late one at the Stripe
        sandbox; race ops against the gateway for a racing one."""
        waiting = [
            r
            for r in self.plan.refunds
            if (r.late or r.race) and r.refund_no in self.report.accepted
        ]
        races: list[asyncio.Task[None]] = []
        bound = time.monotonic() + CHAOS_TIMINGS["outcome_deadline"].total_seconds() + 60
        while waiting and time.monotonic() < bound:
            found = await asyncio.to_thread(
                read.statuses, self.stack.database_url, [r.refund_no for r in waiting]
            )
            for refund in [r for r in waiting if found.get(r.refund_no) == "abnormal"]:
                waiting.remove(refund)
                if refund.race:
                    races.append(asyncio.create_task(self.play.race(refund, http)))
                    continue
                await self._succeed_at_stripe(refund.refund_no, http)
                self.report.late_answered.append(refund.refund_no)
            await asyncio.sleep(0.5)
        await asyncio.gather(*races)

    async def _succeed_at_stripe(self, refund_no: str, http: httpx.AsyncClient) -> None:
        base = f"{self.stack.stripe_url}/_sandbox/refunds"
        listed = await http.get(base, params={"refund_no": refund_no})
        listed.raise_for_status()
        for refund in listed.json()["data"]:
            (await http.post(f"{base}/{refund['id']}/succeed")).raise_for_status()

    async def _settle(self) -> None:
        """Wait, bounded, until every accepted refund is terminal (or the bound passes)."""
        bound = CHAOS_TIMINGS["outcome_deadline"].total_seconds() + 60
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            self.stack.check_alive()
            found = await asyncio.to_thread(
                read.statuses, self.stack.database_url, self.report.accepted
            )
            if len(found) == len(self.report.accepted) and TERMINAL >= set(found.values()):
                return
            await asyncio.sleep(1.0)

    # ---- checks ---------------------------------------------------------------------------

    async def _check(self, http: httpx.AsyncClient) -> None:
        order_nos = [order.order_no for order in self.plan.orders]
        snap = await asyncio.to_thread(read.read_tables, self.stack.database_url, order_nos)
        snap.gateway = await read.gateway_refunds(
            http, self.stack.stripe_url, self.stack.wechat_url
        )
        events = await read.stripe_events(http, self.stack.stripe_url)
        notes = await read.wechat_notifications(http, self.stack.wechat_url)
        refunds, ops = self.plan.refunds, self.report.ops
        self.report.problems += run_checks(self.plan, self.report.accepted, snap)
        ours = on_our_payments(snap)
        self.report.problems += check_faults_applied(refunds, events, notes, ours)
        self.report.problems += check_late(refunds, self.report.late_answered, snap)
        self.report.problems += check_races(refunds, ops.raced, snap)
        self.report.problems += check_foreign(refunds, ops.foreign, snap)
        self.report.problems += check_late_failures(refunds, snap)
        first, second = (run.findings for run in ops.runs) if len(ops.runs) == 2 else ([], [])
        phases = [p for run in ops.runs for p in run.summary.failed_phases]
        self.report.problems += check_reconciliation(refunds, first, second, phases, ops.moved)
        self.report.problems += [Problem("request", why) for why in ops.problems]
        self.report.statuses = Counter(row["status"] for row in snap.refunds.values())
        await self._timelines(http)

    async def _timelines(self, http: httpx.AsyncClient) -> None:
        """Each problem refund's story as the API tells it (admin view), for the report."""
        wanted = sorted({p.refund_no for p in self.report.problems if p.refund_no})
        for refund_no in wanted[:TIMELINES_SHOWN]:
            response = await http.get(f"/v1/refunds/{refund_no}", headers=self.people.admin)
            if response.status_code != 200:
                continue
            refund = response.json()
            self.report.timelines[refund_no] = [_event_line(e) for e in refund["timeline"] or []]


def _event_line(event: dict[str, Any]) -> str:
    detail = json.dumps(event["detail"], separators=(",", ":"))[:240]
    return f"{event['at'][11:23]} {event['actor']} {event['event']} {detail}"


async def _with_retries(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Retry 5xx answers and transport errors as a patient client would; the API's commands
    are idempotent (same refund_no, same body), so a retry never makes a second refund."""
    last: httpx.Response | None = None
    for attempt in range(ATTEMPTS):
        try:
            last = await call()
            if last.status_code < 500:
                return last
        except httpx.HTTPError as exc:
            last = httpx.Response(599, text=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(0.5 * (attempt + 1))
    assert last is not None
    return last


# ---- entry points -----------------------------------------------------------------------------


def run_chaos(
    options: ChaosOptions, database_url: str, temporal_address: str, data_dir: Path
) -> ChaosReport:
    """The whole run on a given PostgreSQL (migrated) and Temporal; tests call this too."""
    plan = make_plan(options.refunds, options.workers, options.seed, options.kills)
    stack = ChaosStack(data_dir, database_url, temporal_address, options.workers)
    started = time.monotonic()
    try:
        stack.start()

        async def drive() -> ChaosReport:
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
                return await ChaosRun(plan, stack, options).run(http)

        report = asyncio.run(drive())
    finally:
        stack.stop()
    report.seconds = time.monotonic() - started
    _write_report(report, stack.data_dir / "chaos-report.json")
    return report


def _write_report(report: ChaosReport, path: Path) -> None:
    body = {
        "line": report.line(),
        "run_id": report.plan.run_id,
        "seed": report.plan.seed,
        "problems": [str(p) for p in report.problems],
        "kills": [asdict(k) for k in report.kills],
        "chaos": report.chaos,
        "timelines": report.timelines,
        "plan": [
            {"refund_no": r.refund_no, "channel": r.channel, "amount": r.amount, "faults": r.faults}
            for r in report.plan.refunds
        ],
    }
    path.write_text(json.dumps(body, indent=2))


def describe(report: ChaosReport) -> str:
    """The details behind the one line: faults, kills, problems and their timelines."""
    out = [f"run {report.plan.run_id} seed {report.plan.seed}"]
    for name, chaos in report.chaos.items():
        out.append(f"  chaos {name}: {chaos.get('calls')} calls, hits {chaos.get('hits')}")
    faults = Counter(f for r in report.plan.refunds for f in r.faults)
    out.append(f"  per-refund faults: {dict(faults)}")
    out.append(f"  late refunds answered after turning abnormal: {len(report.late_answered)}")
    races = Counter((r.resolved, r.answer, r.code, r.settled) for r in report.ops.raced.values())
    out.append(f"  races (ops asked, answer, code, gateway said): {dict(races)}")
    for n, run in enumerate(report.ops.runs, 1):
        summary = run.summary
        out.append(f"  reconciliation {n} #{summary.reconciliation_id}: {summary.counts}")
        out.append(f"    this run's: {dict(Counter(f.kind for f in run.findings))}")
    out += [f"  kill: {k}" for k in report.kills]
    out += [f"  {p}" for p in report.problems]
    for refund_no, lines in report.timelines.items():
        out.append(f"  timeline {refund_no}:")
        out += [f"    {line}" for line in lines]
    return "\n".join(out)


def run_chaos_command(options: ChaosOptions, data_dir: Path | None) -> int:
    """`refunds chaos`: its own embedded PostgreSQL and Temporal, then `run_chaos`."""
    from refunds.db.migrate import upgrade
    from refunds.embedded.ports import free_port
    from refunds.embedded.postgres import EmbeddedPostgres
    from refunds.embedded.temporal import EmbeddedTemporal

    root = (data_dir or Path(tempfile.mkdtemp(prefix="refunds-chaos-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    postgres = EmbeddedPostgres(root / "postgres", free_port(), durable=False)
    temporal = EmbeddedTemporal(free_port(), None, None, root / "logs" / "temporal.log")
    try:
        url = postgres.start()
        upgrade(url)
        report = run_chaos(options, url, temporal.start(), root)
    finally:
        temporal.stop()
        postgres.stop()
    print(describe(report), f"\n  logs and chaos-report.json in {root}", file=sys.stderr)
    print(report.line(), flush=True)
    return 0 if report.ok else 1
