"""What a workflow's history holds: its events by type, the bare shape that matches them, and
how long its first workflow task took, where an apply's time inside Temporal goes."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from refunds.bench.bare_messages import BareShape

PREFIX = "EVENT_TYPE_"
LOCAL_ACTIVITY_MARKER = "core_local_activity"
# The kinds the bare workflow is built from, as printed: (label, event type).
SHAPE_KINDS = (
    ("local activities", "MARKER_RECORDED/local_activity"),
    ("activities", "ACTIVITY_TASK_SCHEDULED"),
    ("signals", "WORKFLOW_EXECUTION_SIGNALED"),
    ("timers", "TIMER_STARTED"),
    ("updates", "WORKFLOW_EXECUTION_UPDATE_ACCEPTED"),
    ("search-attribute upserts", "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"),
)


def event_type_name(value: int) -> str:
    return EventType.Name(value).removeprefix(PREFIX)  # type: ignore[arg-type]


def count_events(events: Iterable[HistoryEvent]) -> Counter[str]:
    """Events by type; local-activity markers are also counted apart from other markers
    (patches, side effects) under `MARKER_RECORDED/local_activity`."""
    counts: Counter[str] = Counter()
    for event in events:
        name = event_type_name(event.event_type)
        counts[name] += 1
        if name == "MARKER_RECORDED":
            marker = event.marker_recorded_event_attributes.marker_name
            if marker == LOCAL_ACTIVITY_MARKER:
                counts["MARKER_RECORDED/local_activity"] += 1
    return counts


@dataclass(frozen=True)
class FirstTask:
    """The first workflow task of a run started by Update-with-Start, which the update's answer
    waits for: how long it sat in the task queue before a worker's poll took it, how long the
    worker took to complete it (its local activity included), and when the update was answered,
    all counted from the run's start (seconds)."""

    waited: float  # WORKFLOW_TASK_SCHEDULED to WORKFLOW_TASK_STARTED
    ran: float  # WORKFLOW_TASK_STARTED to WORKFLOW_TASK_COMPLETED
    answered: float  # WORKFLOW_EXECUTION_STARTED to the first WORKFLOW_EXECUTION_UPDATE_COMPLETED


def first_task(events: Sequence[HistoryEvent]) -> FirstTask | None:
    """The first workflow task's times, or None when the history lacks one of its events."""
    first: dict[int, float] = {}
    for event in events:
        first.setdefault(event.event_type, event.event_time.ToNanoseconds() / 1e9)
    kinds = (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    )
    if any(kind not in first for kind in kinds):
        return None
    began, scheduled, started, completed, answered = (first[kind] for kind in kinds)
    return FirstTask(started - scheduled, completed - started, answered - began)


@dataclass(frozen=True)
class HistoryStats:
    """Histories of a sample of workflows: events per workflow and per type, and their first
    workflow tasks."""

    totals: list[int]  # events per workflow
    per_type: dict[str, float]  # mean per workflow
    first_tasks: list[FirstTask] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.totals) if self.totals else 0.0

    def typical(self, kind: str) -> int:
        return round(self.per_type.get(kind, 0.0))


def history_stats(
    samples: Sequence[Counter[str]], first_tasks: Iterable[FirstTask | None] = ()
) -> HistoryStats:
    timed = [task for task in first_tasks if task is not None]
    if not samples:
        return HistoryStats([], {}, timed)
    totals = [sum(v for k, v in c.items() if "/" not in k) for c in samples]
    names = sorted({name for counts in samples for name in counts})
    per_type = {name: sum(c[name] for c in samples) / len(samples) for name in names}
    return HistoryStats(totals, per_type, timed)


def shape_of(stats: HistoryStats) -> BareShape:
    """The bare workflow with as many of each command as the product's typical refund."""
    return BareShape(
        local_activities=stats.typical("MARKER_RECORDED/local_activity"),
        activities=stats.typical("ACTIVITY_TASK_SCHEDULED"),
        signals=stats.typical("WORKFLOW_EXECUTION_SIGNALED"),
        timers=stats.typical("TIMER_STARTED"),
        upserts=stats.typical("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"),
        cancelled_timers=stats.typical("TIMER_CANCELED"),
    )
