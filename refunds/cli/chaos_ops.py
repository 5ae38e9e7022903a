"""What the chaos run plays besides the refunds' own traffic: ops deciding abnormal refunds while
the gateway settles them, another system's refunds under our refund_nos, failures days after a
success with every webhook lost, and two reconciliation runs, the first with lookups refused.

Ops act through the HTTP API as a person would; the gateways are moved through their sandboxes'
control endpoints; reconciliation is started as `refunds reconcile` starts it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import stripe

from refunds.cli import chaos_snapshot as read
from refunds.cli.chaos_checks import TERMINAL, Finding, RaceRecord
from refunds.cli.chaos_plan import RefundPlan
from refunds.cli.chaos_stack import ChaosStack
from refunds.domain.messages import ReconciliationInput, ReconciliationSummary
from refunds.runtime.temporal_client import connect
from refunds.settings import Settings
from workflows.reconciliation import ReconciliationWorkflow

DAY = 86_400
BACKDATED_DAYS = 5  # a late failure of a refund created this long ago: outside any window
REFUSED_STATUSES = (409, 503)  # a decision the product refused: wait for the gateway's word
RESOLVE_TRIES = 8  # of a resolution ops must make (503: the gateway could not be asked)
WAIT_SECONDS = 60.0  # for a reopened refund to turn abnormal, a resolved one to finish
RECONCILIATION_TIMEOUT = timedelta(minutes=10)
# Refused lookups: WeChat answers the refund's query 400 PARAM_ERROR for the whole run; Stripe
# answers its lists 500 twice, which the phases' retries must ride out.
WECHAT_REFUND_PATH = "/v3/refund/domestic/refunds/"
STRIPE_LIST_FAULTS = ("/v1/refunds", "/v1/events")
# What each gateway is made to say when a race settles, at its sandbox.
WECHAT_SETTLED = {"succeeded": "SUCCESS", "failed": "CLOSED"}
STRIPE_SETTLED = {"succeeded": "succeed", "failed": "fail"}


@dataclass
class ReconciliationRun:
    summary: ReconciliationSummary
    findings: list[Finding]


@dataclass
class OpsRecord:
    """What the ops side of a run did and saw, for the checks and the summary line."""

    raced: dict[str, RaceRecord] = field(default_factory=dict)
    foreign: dict[str, str] = field(default_factory=dict)  # our refund_no -> the other's id
    runs: list[ReconciliationRun] = field(default_factory=list)
    # Statuses of the run's refunds before and after the second reconciliation run.
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # requests that answered the unexpected

    @property
    def refused(self) -> int:
        return sum(1 for r in self.raced.values() if r.answer in REFUSED_STATUSES)

    def found(self, run: int, kind: str) -> set[str]:
        if run >= len(self.runs):
            return set()
        return {f.refund_no or f.subject for f in self.runs[run].findings if f.kind == kind}


class OpsPlay:
    def __init__(
        self,
        stack: ChaosStack,
        settings: Settings,
        run_id: str,
        ops: dict[str, str],
        payment_refs: dict[str, str],
    ) -> None:
        self.stack, self.settings, self.run_id, self.ops = stack, settings, run_id, ops
        self.payment_refs = payment_refs  # order_no -> its payment at the gateway
        self.record = OpsRecord()
        self.other_payments: dict[str, str] = {}  # refund_no -> another system's payment

    # ---- ops decisions racing the gateway -------------------------------------------------

    async def race(self, refund: RefundPlan, http: httpx.AsyncClient) -> None:
        """Resolve the abnormal refund as ops while its gateway settles it, `race_lead` seconds
        apart (either way round). A refused decision is left refused: the refund, still
        listening, must finish by the gateway's word."""
        assert refund.race is not None
        resolved, settled = refund.race

        async def later(delay: float, step: Awaitable[Any]) -> Any:
            await asyncio.sleep(max(0.0, delay))
            return await step

        (status, code), _ = await asyncio.gather(
            later(-refund.race_lead, self._resolve_once(refund.refund_no, resolved, http)),
            later(refund.race_lead, self._settle_at_gateway(refund, settled, http)),
        )
        self.record.raced[refund.refund_no] = RaceRecord(resolved, status, code, settled)

    async def _resolve_once(
        self, refund_no: str, outcome: str, http: httpx.AsyncClient
    ) -> tuple[int, str | None]:
        url = f"/v1/refunds/{refund_no}/resolve"
        body = {"outcome": outcome, "note": "chaos ops"}
        for attempt in range(3):
            try:
                response = await http.post(url, json=body, headers=self.ops)
            except httpx.HTTPError:
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            code = _error_code(response)
            if response.status_code not in (200, *REFUSED_STATUSES):
                self.record.problems.append(f"resolve {refund_no}: {response.status_code} {code}")
            return response.status_code, code
        return 599, "no answer"

    async def _settle_at_gateway(
        self, refund: RefundPlan, outcome: str, http: httpx.AsyncClient
    ) -> None:
        if refund.channel == "wechatpay":
            url = f"{self.stack.wechat_url}/sandbox/refunds/{refund.refund_no}/status"
            response = await http.post(url, json={"status": WECHAT_SETTLED[outcome]})
        else:
            gateway_id = await self._ours_at_stripe(refund, http)
            base = f"{self.stack.stripe_url}/_sandbox/refunds"
            response = await http.post(f"{base}/{gateway_id}/{STRIPE_SETTLED[outcome]}", json={})
        if response.status_code != 200:
            self.record.problems.append(f"settle {refund.refund_no}: {response.text[:200]}")

    async def _ours_at_stripe(self, refund: RefundPlan, http: httpx.AsyncClient) -> str:
        """Our refund's id at Stripe: the one under its refund_no on our order's payment."""
        listed = await http.get(
            f"{self.stack.stripe_url}/_sandbox/refunds", params={"refund_no": refund.refund_no}
        )
        listed.raise_for_status()
        payment = self.payment_refs[refund.order_no]
        found = [r for r in listed.json()["data"] if r["payment_intent"] == payment]
        return str(found[0]["id"]) if found else "missing"

    # ---- another system's refunds under our refund_nos ------------------------------------

    async def pay_elsewhere(self, refund: RefundPlan) -> None:
        """Another payment at the same Stripe account, made before any chaos, for the foreign
        refund to refund (the same amount as ours: only the payment tells them apart)."""
        from refunds.sandboxes.payments import pay_with_stripe

        key = self.settings.stripe_api_key
        assert key is not None
        paid = await asyncio.to_thread(
            pay_with_stripe, self.stack.stripe_url, key, refund.amount, "USD"
        )
        self.other_payments[refund.refund_no] = paid

    async def refund_elsewhere(self, refund: RefundPlan) -> None:
        """The other system refunds its payment under our refund_no, with the official client
        (not our adapter), while our refund is in flight; retried under one idempotency key
        through the gateway's chaos."""
        key = self.settings.stripe_api_key
        assert key is not None
        client = stripe.StripeClient(
            key, base_addresses={"api": self.stack.stripe_url}, max_network_retries=0
        )
        payment = self.other_payments[refund.refund_no]

        def create() -> stripe.Refund:
            return client.v1.refunds.create(
                params={
                    "payment_intent": payment,
                    "amount": refund.amount,
                    "metadata": {"refund_no": refund.refund_no},
                },
                options={"idempotency_key": f"elsewhere-{refund.refund_no}"},
            )

        error: Exception | None = None
        for attempt in range(6):
            try:
                created = await asyncio.to_thread(create)
            except stripe.StripeError as exc:
                error = exc
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            self.record.foreign[refund.refund_no] = str(created.id)
            return
        self.record.problems.append(f"refund elsewhere {refund.refund_no}: {error}")

    async def fail_elsewhere(self, refunds: list[RefundPlan], http: httpx.AsyncClient) -> None:
        """Fail the chosen foreign refunds once ours finished: their `refund.failed` carries our
        refund_no and must move nothing of ours."""
        for refund in (r for r in refunds if r.foreign_fails):
            gateway_id = self.record.foreign.get(refund.refund_no)
            if gateway_id is None:
                continue
            url = f"{self.stack.stripe_url}/_sandbox/refunds/{gateway_id}/fail"
            response = await http.post(url, json={"failure_reason": "elsewhere"})
            if response.status_code != 200:
                self.record.problems.append(f"fail elsewhere {refund.refund_no}: {response.text}")

    # ---- late failures and reconciliation -------------------------------------------------

    async def aftermath(self, refunds: list[RefundPlan], http: httpx.AsyncClient) -> None:
        """Once every refund finished: foreign refunds failed, late failures made (backdated,
        failed, no webhook), reconciliation run with lookups refused, ops resolve what it
        reopened, and a second run must leave their decisions alone."""
        await self.fail_elsewhere(refunds, http)
        late = [r for r in refunds if "late_failure" in r.faults]
        for refund in late:
            await self._fail_days_later(refund, http)
        await self._refuse_lookups(refunds, http)
        try:
            await self._reconcile(1)
        finally:
            await self._clear_faults(http)
        await self._wait_for(late, {"abnormal"})
        for refund in late:
            await self._resolve_reopened(refund, http)
        await self._wait_for(late, TERMINAL)
        everyone = [r.refund_no for r in refunds]
        before = await asyncio.to_thread(read.statuses, self.stack.database_url, everyone)
        await self._reconcile(2)
        await asyncio.sleep(3.0)  # what a reopening would start has had time to move it
        after = await asyncio.to_thread(read.statuses, self.stack.database_url, everyone)
        self.record.moved = {no: (was, after.get(no, "?")) for no, was in before.items()}

    async def _fail_days_later(self, refund: RefundPlan, http: httpx.AsyncClient) -> None:
        """Its Stripe refund, created days ago, fails today; its webhooks are all suppressed."""
        gateway_id = await self._ours_at_stripe(refund, http)
        base = f"{self.stack.stripe_url}/_sandbox/refunds/{gateway_id}"
        created = int(time.time()) - BACKDATED_DAYS * DAY
        for path, body in (
            ("created", {"created": created}),
            ("fail", {"failure_reason": "chaos_days_later"}),
        ):
            response = await http.post(f"{base}/{path}", json=body)
            if response.status_code != 200:
                self.record.problems.append(f"{path} {refund.refund_no}: {response.text[:200]}")

    async def _refuse_lookups(self, refunds: list[RefundPlan], http: httpx.AsyncClient) -> None:
        for refund in (r for r in refunds if "lookup_refused" in r.faults):
            body = {
                "action": "error",
                "method": "GET",
                "path_prefix": WECHAT_REFUND_PATH + refund.refund_no,
                "times": 1000,
            }
            (
                await http.post(f"{self.stack.wechat_url}/sandbox/faults", json=body)
            ).raise_for_status()
        for path in STRIPE_LIST_FAULTS:
            body = {"action": "http_500", "method": "GET", "path_prefix": path, "times": 2}
            (
                await http.post(f"{self.stack.stripe_url}/_sandbox/faults", json=body)
            ).raise_for_status()

    async def _clear_faults(self, http: httpx.AsyncClient) -> None:
        (await http.delete(f"{self.stack.wechat_url}/sandbox/faults")).raise_for_status()
        (await http.delete(f"{self.stack.stripe_url}/_sandbox/faults")).raise_for_status()

    async def _reconcile(self, n: int) -> None:
        """One run over today (UTC), as `refunds reconcile --date` starts it."""
        client = await connect(self.settings)
        summary = await client.execute_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(day=datetime.now(UTC).date().isoformat(), time_zone="UTC"),
            id=f"reconciliation-chaos-{self.run_id}-{n}-{uuid.uuid4().hex[:6]}",
            task_queue=self.settings.task_queue,
            execution_timeout=RECONCILIATION_TIMEOUT,
        )
        found = await asyncio.to_thread(
            read.findings, self.stack.database_url, summary.reconciliation_id, self.run_id
        )
        self.record.runs.append(ReconciliationRun(summary, found))

    async def _wait_for(self, refunds: list[RefundPlan], wanted: frozenset[str] | set[str]) -> None:
        nos = [r.refund_no for r in refunds]
        deadline = time.monotonic() + WAIT_SECONDS
        while nos and time.monotonic() < deadline:
            found = await asyncio.to_thread(read.statuses, self.stack.database_url, nos)
            if all(found.get(no) in wanted for no in nos):
                return
            await asyncio.sleep(0.5)

    async def _resolve_reopened(self, refund: RefundPlan, http: httpx.AsyncClient) -> None:
        """Ops decide the reopened refund: the gateway says failed, so `failed` is accepted
        (after its lookup, retried while the gateway cannot be asked) and so is `succeeded`."""
        assert refund.resolve_as is not None
        for _ in range(RESOLVE_TRIES):
            status, code = await self._resolve_once(refund.refund_no, refund.resolve_as, http)
            if status == 200:
                return
            if status != 503:
                break
            await asyncio.sleep(1.0)
        self.record.problems.append(f"resolve reopened {refund.refund_no}: {status} {code}")


def _error_code(response: httpx.Response) -> str | None:
    if response.status_code == 200:
        return None
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return response.text[:80]
