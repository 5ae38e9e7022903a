"""The bench's timed phases. Product: orders paid and registered first, off the clock; then each
refund asked for by its customer, approved by someone else, and awaited on its workflow. Bare:
the same concurrency and count of `BareWorkflow`s, driven straight at Temporal."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import issue_token
from refunds.bench.bare_messages import BareApproval, BareInput, BareShape, BareSignal
from refunds.bench.bare_workflow import BareWorkflow
from refunds.bench.history import HistoryStats, count_events, first_task, history_stats
from refunds.bench.procstat import CpuSampler, spent
from refunds.bench.report import Phase
from workflows.refund import workflow_id

AMOUNT = 1000  # minor units, USD
CUSTOMER, APPROVER, ADMIN = "bench-customer", "bench-approver", "bench-admin"
MAX_FAILURES_KEPT = 10
RESULT_TIMEOUT = 600.0  # seconds: a refund still unfinished then is a failure, not a hang


@dataclass(frozen=True)
class Endpoints:
    api_url: str
    stripe_url: str
    temporal: Client
    jwt_secret: str
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    def headers(self, sub: str, role: str) -> dict[str, str]:
        token = issue_token(
            self.jwt_secret, sub, [role], issuer=self.jwt_issuer, audience=self.jwt_audience
        )
        return {"Authorization": f"Bearer {token}"}


# Well below any server's keep-alive (ours hold 75 s, `refunds dev`'s of an older version and
# uvicorn's default 5 s): a request sent on an idle connection in the moment its server closes
# it is reset unanswered (httpx.ReadError), which httpx's own 5 s expiry races.
IDLE_CONNECTION_SECONDS = 2.0


def http_client(concurrency: int) -> httpx.AsyncClient:
    """The bench's one client, to the API and the Stripe sandbox, for `concurrency` refunds."""
    limits = httpx.Limits(
        max_connections=concurrency + 10, keepalive_expiry=IDLE_CONNECTION_SECONDS
    )
    return httpx.AsyncClient(timeout=120, limits=limits)


async def gather_limited(
    step: Callable[[int], Awaitable[None]],
    count: int,
    concurrency: int,
    rate: float | None = None,
) -> None:
    """`step(0)` … `step(count - 1)`, at most `concurrency` at once; with a `rate`, step i also
    waits for its arrival time, i / rate seconds after the first (an open load: each arrives
    on time whatever the ones before it are doing, unless `concurrency` are still in flight)."""
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    first = loop.time()

    async def guarded(index: int) -> None:
        if rate is not None:
            await asyncio.sleep(max(0.0, first + index / rate - loop.time()))
        async with gate:
            await step(index)

    await asyncio.gather(*(guarded(i) for i in range(count)))


# ---- product ----------------------------------------------------------------------------------


async def prepare_orders(
    http: httpx.AsyncClient, at: Endpoints, count: int, concurrency: int
) -> list[str]:
    """Paid orders, each paid at the Stripe sandbox then registered by an admin: before the
    clock starts, so the timed phase is refunds only."""
    run = uuid.uuid4().hex[:8]
    order_nos = [f"BENCH-{run}-{i:05d}" for i in range(count)]
    admin = at.headers(ADMIN, "admin")

    async def one(index: int) -> None:
        paid = await http.post(
            f"{at.stripe_url}/_sandbox/payments", json={"amount": AMOUNT, "currency": "usd"}
        )
        paid.raise_for_status()
        order = {
            "order_no": order_nos[index],
            "user_id": CUSTOMER,
            "channel": "stripe",
            "currency": "USD",
            "total_amount": AMOUNT,
            "paid_amount": AMOUNT,
            "payment_ref": paid.json()["id"],
            "status": "paid",
            "items": [{"sku": "BENCH-SKU", "quantity": 1, "unit_amount": AMOUNT}],
        }
        (await http.post(f"{at.api_url}/v1/orders", json=order, headers=admin)).raise_for_status()

    await gather_limited(one, count, concurrency)
    return order_nos


class ProductPhase:
    def __init__(self, http: httpx.AsyncClient, at: Endpoints, order_nos: Sequence[str]) -> None:
        self.http, self.at, self.order_nos = http, at, order_nos
        self.phase = Phase("product", len(order_nos))
        self.customer = at.headers(CUSTOMER, "customer")
        self.approver = at.headers(APPROVER, "approver")
        self.succeeded: list[str] = []  # refund_nos, in the order they finished

    async def run(self, concurrency: int, cpu: CpuSampler, rate: float | None = None) -> Phase:
        await timed(
            self.phase,
            cpu,
            lambda: gather_limited(self._one, self.phase.count, concurrency, rate),
        )
        return self.phase

    async def _one(self, index: int) -> None:
        try:
            await self._refund(self.order_nos[index])
        except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
            _failed(self.phase, f"{self.order_nos[index]}: {type(exc).__name__}: {exc}")

    async def _refund(self, order_no: str) -> None:
        started = time.perf_counter()
        body = {"order_no": order_no, "amount": AMOUNT, "reason": "bench"}
        applied = await self.http.post(
            f"{self.at.api_url}/v1/refunds", json=body, headers=self.customer
        )
        _expect(applied, 202)
        answered = time.perf_counter()
        refund_no = applied.json()["refund_no"]
        approve = f"{self.at.api_url}/v1/refunds/{refund_no}/approve"
        _expect(await self.http.post(approve, json={}, headers=self.approver), 200)
        approved = time.perf_counter()
        # The workflow's own result, not the API: polling would load the process being measured.
        handle = self.at.temporal.get_workflow_handle(workflow_id(refund_no))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT)
        finished = time.perf_counter()
        status = result.get("status") if isinstance(result, dict) else None
        if status not in (None, "succeeded"):
            raise RuntimeError(f"refund {refund_no} ended {status}")
        self.phase.apply.append(answered - started)
        self.phase.approve.append(approved - answered)
        self.phase.done.append(finished - started)
        self.succeeded.append(refund_no)


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:200]}"
        )


def _failed(phase: Phase, why: str) -> None:
    phase.failures.append(why)
    del phase.failures[MAX_FAILURES_KEPT:]


async def timed(phase: Phase, cpu: CpuSampler, work: Callable[[], Awaitable[None]]) -> None:
    before = cpu.sample()
    started = time.perf_counter()
    await work()
    phase.seconds = time.perf_counter() - started
    phase.cpu = spent(before, cpu.sample())


# ---- histories and the gateway ------------------------------------------------------------------


async def read_histories(
    temporal: Client, workflow_ids: Sequence[str], sample: int
) -> HistoryStats:
    """Events by type and first workflow tasks of up to `sample` workflows spread over the run."""
    if not workflow_ids:
        return history_stats([])
    step = max(1, len(workflow_ids) // sample)
    chosen = list(workflow_ids)[::step][:sample]
    histories = await asyncio.gather(
        *(temporal.get_workflow_handle(wid).fetch_history() for wid in chosen)
    )
    return history_stats(
        [count_events(h.events) for h in histories], [first_task(h.events) for h in histories]
    )


async def stripe_refund_stamps(
    http: httpx.AsyncClient, stripe_url: str, refund_nos: Sequence[str]
) -> list[int]:
    """When the Stripe sandbox created each of these refunds (unix seconds)."""
    listed = await http.get(f"{stripe_url}/_sandbox/refunds")
    listed.raise_for_status()
    ours = set(refund_nos)
    data: list[dict[str, Any]] = listed.json()["data"]
    return [int(r["created"]) for r in data if r.get("metadata", {}).get("refund_no") in ours]


# ---- bare -------------------------------------------------------------------------------------


class BarePhase:
    """`count` BareWorkflows as the product's refunds go: Update-with-Start `apply`, `approve`,
    then, after the gateway's pending delay, the signals the product receives as webhooks."""

    def __init__(
        self, temporal: Client, task_queue: str, shape: BareShape, count: int, delay: float
    ) -> None:
        self.temporal, self.task_queue, self.shape, self.delay = temporal, task_queue, shape, delay
        self.phase = Phase("bare", count)
        self.run_id = uuid.uuid4().hex[:8]
        self.finished: list[str] = []

    def workflow_id(self, index: int) -> str:
        return f"bench-bare-{self.run_id}-{index:05d}"

    async def run(self, concurrency: int, cpu: CpuSampler, rate: float | None = None) -> Phase:
        await timed(
            self.phase,
            cpu,
            lambda: gather_limited(self._one, self.phase.count, concurrency, rate),
        )
        return self.phase

    async def _one(self, index: int) -> None:
        try:
            await self._workflow(self.workflow_id(index))
        except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
            _failed(self.phase, f"{self.workflow_id(index)}: {type(exc).__name__}: {exc}")

    async def _workflow(self, wid: str) -> None:
        start = WithStartWorkflowOperation(
            BareWorkflow.run,
            BareInput(self.shape),
            id=wid,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        started = time.perf_counter()
        await self.temporal.execute_update_with_start_workflow(
            BareWorkflow.apply, start_workflow_operation=start
        )
        answered = time.perf_counter()
        handle = self.temporal.get_workflow_handle_for(BareWorkflow.run, wid)
        await handle.execute_update(BareWorkflow.approve, BareApproval(APPROVER))
        approved = time.perf_counter()
        await asyncio.sleep(self.delay)
        for seq in range(self.shape.signals):
            await handle.signal(BareWorkflow.notify, BareSignal(seq))
        await asyncio.wait_for(handle.result(), RESULT_TIMEOUT)
        finished = time.perf_counter()
        self.phase.apply.append(answered - started)
        self.phase.approve.append(approved - answered)
        self.phase.done.append(finished - started)
        self.finished.append(wid)
