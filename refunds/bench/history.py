"""What a workflow's history holds, counted by event type, and the bare shape that matches it."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
class HistoryStats:
    """Histories of a sample of workflows: events per workflow and per type."""

    totals: list[int]  # events per workflow
    per_type: dict[str, float]  # mean per workflow

    @property
    def median(self) -> float:
        return statistics.median(self.totals) if self.totals else 0.0

    def typical(self, kind: str) -> int:
        return round(self.per_type.get(kind, 0.0))


def history_stats(samples: Sequence[Counter[str]]) -> HistoryStats:
    if not samples:
        return HistoryStats([], {})
    totals = [sum(v for k, v in c.items() if "/" not in k) for c in samples]
    names = sorted({name for counts in samples for name in counts})
    per_type = {name: sum(c[name] for c in samples) / len(samples) for name in names}
    return HistoryStats(totals, per_type)


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
