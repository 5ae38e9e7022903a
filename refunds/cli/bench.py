"""`refunds bench`: the product's refund throughput and latency, where the CPU goes, and (with
`--compare-bare`) the same against a bare workflow of the same shape on the same servers.

By default it starts its own stack in a temp dir, as `refunds dev` runs it (PostgreSQL, the
Temporal dev server with its sqlite tuning, both sandboxes, the API, `--workers` workers, each a
process of its own), so it knows every process's PID and owns the configuration. Numbers come
from this command, never from a timed test.

A run: paid orders registered (off the clock); the product phase (customer's request, approval,
the workflow's result); histories of a sample of the refunds, counted by event type; the Stripe
sandbox's refunds per second; then the bare phase: `BareWorkflow`s built from the counted shape,
on their own task queue, by their own worker processes, driven at the same concurrency.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client

from refunds.bench import report
from refunds.bench.history import HistoryStats, shape_of
from refunds.bench.matching import queue_matching, read_metrics
from refunds.bench.phases import (
    BarePhase,
    Endpoints,
    ProductPhase,
    http_client,
    prepare_orders,
    read_histories,
    stripe_refund_stamps,
)
from refunds.bench.procstat import CpuSampler
from refunds.bench.report import Phase, RateWindows
from refunds.embedded.process import ChildProcess
from refunds.runtime.temporal_client import data_converter
from refunds.settings import Settings
from workflows.refund import workflow_id


@dataclass
class BenchOptions:
    refunds: int = 200
    concurrency: int = 50
    workers: int = 1
    compare_bare: bool = False
    # Refunds started per second (an open load); None: a closed loop at `concurrency`.
    rate: float | None = None
    stripe_rate: int | None = None  # REFUNDS_STRIPE_RATE_LIMIT of the workers
    refund_delay: float = 2.0  # seconds a sandbox refund stays pending, as under `refunds dev`
    history_sample: int = 30
    data_dir: Path | None = None  # the own stack's; default a temp dir, removed after a good run
    dev_data_dir: Path | None = None  # measure a running `refunds dev` instead


@dataclass
class Target:
    """Where the bench sends its load, and what it knows of the processes it measures."""

    endpoints: Endpoints
    roles: dict[str, list[int]]  # CPU role -> the pids at the roots of its process trees
    stripe_limit: float
    stripe_limit_source: str
    bare_workers: BareWorkers
    metrics_url: str | None = None  # the Temporal server's Prometheus metrics
    product_queue: str | None = None  # the product workers' main task queue


class BareWorkers:
    """Starts the bare workflow's worker processes on a fresh task queue."""

    def __init__(self, temporal_address: str, count: int, logs: Path, env: Mapping[str, str]):
        self.task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
        argv = [sys.executable, "-m", "refunds.bench.bare_worker"]
        argv += ["--temporal-address", temporal_address, "--task-queue", self.task_queue]
        self.children = [
            ChildProcess(f"bare-worker-{i}", argv, logs / f"bare-worker-{i}.log", env=dict(env))
            for i in range(count)
        ]

    def start(self) -> list[int]:
        for child in self.children:
            child.start()
        for child in self.children:
            _wait_for_line(child, "bare worker polling")
        return [c.proc.pid for c in self.children if c.proc is not None]

    def stop(self) -> None:
        for child in self.children:
            child.stop()


def _wait_for_line(child: ChildProcess, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in child.tail(5):
        if not child.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not start:\n{child.tail()}")
        time.sleep(0.1)


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Measured:
    product: Phase
    bare: Phase | None
    stripe_rate: RateWindows

    @property
    def complete(self) -> bool:
        """Every refund (and bare workflow) finished as it should."""
        return not any(phase.failures for phase in (self.product, self.bare) if phase is not None)


async def measure(options: BenchOptions, target: Target) -> Measured:
    """Orders, the product phase, its histories and gateway rate, then the bare phase."""
    at = target.endpoints
    async with http_client(options.concurrency) as http:
        orders = await prepare_orders(http, at, options.refunds, options.concurrency)
        product_run = ProductPhase(http, at, orders)
        product = await _matched(
            http,
            target.metrics_url,
            target.product_queue,
            product_run.run(options.concurrency, CpuSampler(target.roles), options.rate),
        )
        refunds = product_run.succeeded
        ids = [workflow_id(no) for no in refunds]
        product.events = await read_histories(at.temporal, ids, options.history_sample)
        stamps = await stripe_refund_stamps(http, at.stripe_url, refunds)
        bare = None
        if options.compare_bare:
            bare = await _bare(http, options, target, product.events)
    return Measured(product, bare, RateWindows.of(stamps))


async def _bare(
    http: httpx.AsyncClient, options: BenchOptions, target: Target, product_events: HistoryStats
) -> Phase:
    workers = target.bare_workers
    pids = await asyncio.to_thread(workers.start)
    roles = {**target.roles, "bare-worker": pids}
    shape = shape_of(product_events)
    bare_run = BarePhase(
        target.endpoints.temporal, workers.task_queue, shape, options.refunds, options.refund_delay
    )
    try:
        bare = await _matched(
            http,
            target.metrics_url,
            workers.task_queue,
            bare_run.run(options.concurrency, CpuSampler(roles), options.rate),
        )
        bare.events = await read_histories(
            target.endpoints.temporal, bare_run.finished, options.history_sample
        )
    finally:
        await asyncio.to_thread(workers.stop)
    return bare


async def _matched(
    http: httpx.AsyncClient, metrics_url: str | None, queue: str | None, run: Awaitable[Phase]
) -> Phase:
    """The phase `run` drives, with its queue's workflow tasks read from the server's metrics
    before and after it (none when the server has no metrics or the queue is unknown)."""
    before = await read_metrics(http, metrics_url)
    phase = await run
    after = await read_metrics(http, metrics_url)
    if before is not None and after is not None and queue is not None:
        phase.matching = queue_matching(after, queue) - queue_matching(before, queue)
    return phase


def _lines(options: BenchOptions, target: Target, measured: Measured) -> list[str]:
    product, bare = measured.product, measured.bare
    lines = [
        report.machine_line(options.refunds, options.concurrency, options.workers, options.rate)
    ]
    lines += report.table(product, bare)
    lines += report.apply_lines(product, bare)
    lines += report.matching_lines(product, bare)
    lines.append(report.cpu_line("cpu s/refund (product phase)", product))
    if bare is not None:
        lines.append(report.cpu_line("cpu s/wf     (bare phase)   ", bare))
    assert product.events is not None
    lines += report.events_lines("product events per refund", product.events)
    if bare is not None and bare.events is not None:
        lines += report.events_lines("bare events per workflow", bare.events)
    lines.append(
        report.rate_line(measured.stripe_rate, target.stripe_limit, target.stripe_limit_source)
    )
    lines.append(report.targets_line(product, bare, paced=options.rate is not None))
    for phase in (product, bare):
        if phase is not None and phase.failures:
            lines.append(f"{phase.name}: {phase.count - phase.finished} did not finish, e.g.:")
            lines += [f"  {why}" for why in phase.failures]
    return lines


# ---- the stack it runs against ----------------------------------------------------------------


@asynccontextmanager
async def own_stack(options: BenchOptions, root: Path) -> AsyncIterator[Target]:
    """PostgreSQL and Temporal as `refunds dev` runs them, then the product's processes."""
    from refunds.cli.process_stack import ProcessStack
    from refunds.db.migrate import upgrade
    from refunds.embedded.ports import free_port
    from refunds.embedded.postgres import EmbeddedPostgres
    from refunds.embedded.temporal import EmbeddedTemporal

    postgres = EmbeddedPostgres(root / "postgres", free_port())
    temporal = EmbeddedTemporal(
        free_port(), None, root / "temporal.sqlite", root / "logs" / "temporal.log", free_port()
    )
    extra = {"REFUNDS_STRIPE_RATE_LIMIT": str(options.stripe_rate)} if options.stripe_rate else {}
    stack: ProcessStack | None = None
    try:
        url = postgres.start()
        upgrade(url)
        address = temporal.start()
        stack = ProcessStack(
            root,
            url,
            address,
            options.workers,
            refund_delay=options.refund_delay,
            queue_prefix="bench",
            extra_env=extra,
        )
        stack.start()
        settings = Settings(data_dir=root, dev_secrets=True)
        assert settings.jwt_secret is not None
        roles = {
            "temporal": _pids([temporal.child]),
            "postgres": _pids([postgres.child]),
            "api": _pids([stack.api]),
            "worker": _pids(stack.workers),
            "sandbox": _pids(stack.sandboxes),
        }
        yield Target(
            Endpoints(
                stack.api_url,
                stack.stripe_url,
                await Client.connect(address, data_converter=data_converter(settings)),
                settings.jwt_secret,
            ),
            roles,
            float(options.stripe_rate or settings.stripe_rate_limit),
            "--stripe-rate" if options.stripe_rate else "REFUNDS_STRIPE_RATE_LIMIT",
            BareWorkers(address, options.workers, stack.logs, stack.env),
            temporal.metrics_url,
            stack.task_queue,
        )
    finally:
        if stack is not None:
            stack.stop()
        temporal.stop()
        postgres.stop()


def _dev_env(data_dir: Path) -> dict[str, str]:
    return {"REFUNDS_DATA_DIR": str(data_dir), "REFUNDS_DEV_SECRETS": "true"}


@asynccontextmanager
async def running_dev(dev_data_dir: Path, root: Path) -> AsyncIterator[Target]:
    """A running `refunds dev`: its processes are not the bench's, so only the bench's own CPU
    (and the bare workers') is measured."""
    info = json.loads((dev_data_dir / "dev.json").read_text())
    settings = Settings(data_dir=dev_data_dir, dev_secrets=True)
    assert settings.jwt_secret is not None
    address = info["temporal_address"]
    endpoints = Endpoints(
        info["api_url"],
        info["stripe_api_base"],
        await Client.connect(address, data_converter=data_converter(settings)),
        settings.jwt_secret,
        settings.jwt_issuer,
        settings.jwt_audience,
    )
    yield Target(
        endpoints,
        {},
        float(settings.stripe_rate_limit),
        "REFUNDS_STRIPE_RATE_LIMIT of this shell; the dev workers' may differ",
        # The dev stack's data dir: its payload key is the bare worker's too.
        BareWorkers(address, 1, root / "logs", {**os.environ, **_dev_env(dev_data_dir)}),
    )


def _pids(children: Sequence[ChildProcess | None]) -> list[int]:
    return [c.proc.pid for c in children if c is not None and c.proc is not None]


# ---- entry point ------------------------------------------------------------------------------


async def _bench(options: BenchOptions, root: Path) -> tuple[list[str], bool]:
    if options.dev_data_dir is not None:
        context = running_dev(options.dev_data_dir, root)
    else:
        context = own_stack(options, root)
    async with context as target:
        measured = await measure(options, target)
        return _lines(options, target, measured), measured.complete


def run_bench(options: BenchOptions) -> int:
    if options.dev_data_dir is not None and not (options.dev_data_dir / "dev.json").exists():
        print(f"no {options.dev_data_dir / 'dev.json'}: start `refunds dev` first")
        return 2
    temp = options.data_dir is None
    root = (options.data_dir or Path(tempfile.mkdtemp(prefix="refunds-bench-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        lines, ok = asyncio.run(_bench(options, root))
    except (RuntimeError, TimeoutError) as exc:  # a server that did not come up, or died
        print(f"refunds bench: {exc}\nlogs in {root / 'logs'}", file=sys.stderr, flush=True)
        return 1
    print("\n".join(lines), flush=True)
    if temp and ok:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"logs in {root / 'logs'}", file=sys.stderr, flush=True)
    return 0 if ok else 1
