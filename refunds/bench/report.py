"""The bench's numbers and how they are printed: percentiles, phases, the comparison table,
CPU per process, the gateway's request rate and the issue's targets."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from refunds.bench.history import SHAPE_KINDS, HistoryStats
from refunds.bench.matching import Handed, QueueMatching

# Issue 11's targets, printed against each run.
TARGET_THROUGHPUT_RATIO = 0.60  # product refunds/s over bare workflows/s, at least
TARGET_EVENTS = 30  # history events per happy-path refund, at most
TARGET_APPLY_RATIO = 1.5  # product apply p50 over bare Update-with-Start p50, at most
# CPU roles in print order; a role the run did not have is left out.
ROLES = ("temporal", "postgres", "api", "worker", "sandbox", "bare-worker", "bench")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of the values; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Phase:
    """One timed phase: N refunds (or bare workflows) driven at a concurrency."""

    name: str
    count: int
    seconds: float = 0.0
    apply: list[float] = field(default_factory=list)
    approve: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)  # the request to the workflow's result
    failures: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    events: HistoryStats | None = None
    matching: QueueMatching | None = None  # its queue's workflow tasks, from the server's metrics

    @property
    def finished(self) -> int:
        return len(self.done)

    @property
    def per_second(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine_line(refunds: int, concurrency: int, workers: int, rate: float | None = None) -> str:
    load = os.getloadavg()[0]
    load_shape = f"concurrency {concurrency}"
    if rate is not None:
        load_shape = f"started at {rate:g}/s, at most {concurrency} in flight"
    return (
        f"machine: {os.cpu_count()} cores ({cpu_model()}), load {load:.2f} at the start; "
        f"{refunds} refunds, {load_shape}, {workers} worker process(es)"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:6.0f} ms"


def _row(phase: Phase) -> str:
    events = f"{phase.events.median:6.0f}" if phase.events else "     -"
    return (
        f"{phase.name:10} {phase.per_second:6.1f}  {_ms(percentile(phase.apply, 0.5))}"
        f"  {_ms(percentile(phase.apply, 0.95))}  {_ms(percentile(phase.approve, 0.5))}"
        f"  {_ms(percentile(phase.done, 0.5))}  {_ms(percentile(phase.done, 0.95))}  {events}"
    )


def _times(product: float, bare: float) -> str:
    return f"×{product / bare:.2f}" if bare else "-"


def _ratio_row(product: Phase, bare: Phase) -> str:
    def times(q: float, values: Callable[[Phase], list[float]]) -> str:
        return _times(percentile(values(product), q), percentile(values(bare), q))

    cells = [
        times(0.5, lambda p: p.apply),
        times(0.95, lambda p: p.apply),
        times(0.5, lambda p: p.approve),
        times(0.5, lambda p: p.done),
        times(0.95, lambda p: p.done),
    ]
    rate = product.per_second / bare.per_second if bare.per_second else 0.0
    events = "-"
    if product.events and bare.events:
        events = _times(product.events.median, bare.events.median)
    return f"{'ratio':10} {rate:6.2f}  " + "  ".join(f"{c:>9}" for c in cells) + f"  {events:>6}"


def table(product: Phase, bare: Phase | None) -> list[str]:
    header = (
        f"{'':10} {'/s':>6}  {'apply p50':>9}  {'apply p95':>9}  {'approve p50':>9}"
        f"  {'done p50':>9}  {'done p95':>9}  {'events':>6}"
    )
    lines = [header, _row(product)]
    if bare is not None:
        lines += [_row(bare), _ratio_row(product, bare)]
    return lines


def apply_lines(product: Phase, bare: Phase | None) -> list[str]:
    """Where apply's p50 goes, from the sampled histories' first workflow tasks: the task's wait
    in the queue for a worker's poll, its run (the local activity included), the update's answer
    after the start; what apply took beyond that is the client's, the network's and the API's."""
    phases = [p for p in (product, bare) if p is not None and p.events and p.events.first_tasks]
    if not phases:
        return ["apply breakdown: no first workflow task read"]
    sampled = min(len(p.events.first_tasks) for p in phases if p.events)
    lines = [
        f"apply p50 inside Temporal ({sampled}+ histories)  {'task wait':>9}  {'task run':>9}"
        f"  {'answered':>9}  {'outside':>9}"
    ]
    for phase in phases:
        assert phase.events is not None
        tasks = phase.events.first_tasks
        answered = percentile([t.answered for t in tasks], 0.5)
        outside = max(0.0, percentile(phase.apply, 0.5) - answered)
        lines.append(
            f"  {phase.name:40}  {_ms(percentile([t.waited for t in tasks], 0.5))}"
            f"  {_ms(percentile([t.ran for t in tasks], 0.5))}  {_ms(answered)}  {_ms(outside)}"
        )
    return lines


def matching_lines(product: Phase, bare: Phase | None) -> list[str]:
    """How many of each phase's workflow tasks the server handed to a poll already waiting; the
    others were written to the queue's backlog and waited there for a poll."""
    phases = [p for p in (product, bare) if p is not None and p.matching is not None]
    if not phases:
        return ["workflow tasks to a waiting poll: not measured (no server metrics)"]
    lines = ["workflow tasks handed to a poll already waiting (the others waited in a backlog)"]
    for phase in phases:
        assert phase.matching is not None
        lines.append(
            f"  {phase.name:10} first tasks {_share(phase.matching.first)}, "
            f"later (sticky) tasks {_share(phase.matching.sticky)}"
        )
    return lines


def _share(handed: Handed) -> str:
    if not handed.tasks:
        return "none"
    return (
        f"{handed.to_waiting_poll} of {handed.tasks} ({handed.to_waiting_poll / handed.tasks:.0%})"
    )


def cpu_line(label: str, phase: Phase) -> str:
    if not phase.cpu or not phase.finished:
        return f"{label}: not measured"
    cells = [
        f"{role} {phase.cpu[role] / phase.finished:.3f}" for role in ROLES if role in phase.cpu
    ]
    total = sum(phase.cpu.values()) / phase.finished
    return f"{label}  " + "  ".join(cells) + f"  total {total:.3f}"


def events_lines(label: str, stats: HistoryStats) -> list[str]:
    if not stats.totals:
        return [f"{label}: no history read"]
    lines = [
        f"{label}: min {min(stats.totals)}, median {stats.median:.0f}, max {max(stats.totals)}"
        f" ({len(stats.totals)} histories)"
    ]
    kinds = ", ".join(f"{name} {stats.per_type.get(kind, 0):.1f}" for name, kind in SHAPE_KINDS)
    lines.append(f"  {kinds}")
    by_type = sorted(
        ((k, v) for k, v in stats.per_type.items() if "/" not in k), key=lambda kv: -kv[1]
    )
    lines.append("  by type: " + ", ".join(f"{k} {v:.1f}" for k, v in by_type))
    return lines


@dataclass(frozen=True)
class RateWindows:
    """Requests per 1-second window, from their unix-second timestamps."""

    peak: int
    mean: float
    seconds: int
    requests: int
    counts: tuple[int, ...] = ()  # per window, first to last second

    @classmethod
    def of(cls, stamps: Iterable[int]) -> RateWindows:
        per_second = Counter(stamps)
        if not per_second:
            return cls(0, 0.0, 0, 0)
        first, last = min(per_second), max(per_second)
        counts = tuple(per_second[second] for second in range(first, last + 1))
        total = sum(counts)
        return cls(max(counts), total / len(counts), len(counts), total, counts)

    def held(self, limit: float) -> bool:
        return self.peak <= limit

    def busiest(self, seconds: int) -> float:
        """The highest mean rate over `seconds` consecutive windows (a limiter's bursts and the
        jitter between its dispatch and the gateway's clock even out over a few seconds)."""
        span = min(seconds, len(self.counts))
        if not span:
            return 0.0
        sums = [sum(self.counts[i : i + span]) for i in range(len(self.counts) - span + 1)]
        return max(sums) / span

    def over(self, limit: float) -> int:
        """Windows with more requests than the limit."""
        return sum(1 for count in self.counts if count > limit)


def rate_line(windows: RateWindows, limit: float, limit_source: str) -> str:
    if not windows.requests:
        return "stripe refunds created per 1 s window: none seen"
    verdict = "held" if windows.held(limit) else f"NOT held in {windows.over(limit)} windows"
    return (
        f"stripe refunds created per 1 s window: peak {windows.peak}, mean {windows.mean:.1f} "
        f"over {windows.seconds} s ({windows.requests} refunds), busiest 5 s "
        f"{windows.busiest(5):.1f}/s; limit {limit:g}/s "
        f"({limit_source}): {verdict}"
    )


def targets_line(product: Phase, bare: Phase | None, paced: bool = False) -> str:
    """Issue 11's targets against this run. At a fixed start rate both phases run at that rate,
    so their throughputs say nothing of each other's ceiling: not judged then."""
    parts = []
    if paced and bare is not None:
        parts.append("throughput: not compared (both paced)")
    elif bare is not None and bare.per_second:
        ratio = product.per_second / bare.per_second
        ok = ratio >= TARGET_THROUGHPUT_RATIO
        parts.append(f"throughput {ratio:.2f} × bare (≥ {TARGET_THROUGHPUT_RATIO}): {_yes(ok)}")
    if product.events is not None and product.events.totals:
        ok = product.events.median <= TARGET_EVENTS
        parts.append(f"events/refund {product.events.median:.0f} (≤ {TARGET_EVENTS}): {_yes(ok)}")
    if bare is not None and bare.apply and product.apply:
        ratio = percentile(product.apply, 0.5) / percentile(bare.apply, 0.5)
        ok = ratio <= TARGET_APPLY_RATIO
        parts.append(f"apply p50 ×{ratio:.2f} bare (≤ {TARGET_APPLY_RATIO}): {_yes(ok)}")
    return "targets: " + ("; ".join(parts) if parts else "not measured")


def _yes(ok: bool) -> str:
    return "met" if ok else "not met"
