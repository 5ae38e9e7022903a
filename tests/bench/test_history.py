"""A history counted by event type, and the bare shape built from the product's counts."""

from __future__ import annotations

from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent, MarkerRecordedEventAttributes

from refunds.bench.bare_messages import BareShape
from refunds.bench.history import FirstTask, count_events, first_task, history_stats, shape_of


def event(kind: int, marker: str | None = None) -> HistoryEvent:
    if marker is None:
        return HistoryEvent(event_type=kind)  # type: ignore[arg-type]
    attributes = MarkerRecordedEventAttributes(marker_name=marker)
    return HistoryEvent(event_type=kind, marker_recorded_event_attributes=attributes)  # type: ignore[arg-type]


def test_local_activity_markers_are_counted_apart_from_patches() -> None:
    counts = count_events(
        [
            event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
            event(EventType.EVENT_TYPE_MARKER_RECORDED, "core_local_activity"),
            event(EventType.EVENT_TYPE_MARKER_RECORDED, "core_local_activity"),
            event(EventType.EVENT_TYPE_MARKER_RECORDED, "core_patch"),
            event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
        ]
    )
    assert counts == Counter(
        {
            "WORKFLOW_EXECUTION_STARTED": 1,
            "MARKER_RECORDED": 3,
            "MARKER_RECORDED/local_activity": 2,
            "WORKFLOW_EXECUTION_SIGNALED": 1,
        }
    )


def test_events_per_workflow_leave_the_local_activity_subcount_out() -> None:
    one = Counter({"MARKER_RECORDED": 3, "MARKER_RECORDED/local_activity": 2, "TIMER_STARTED": 1})
    two = Counter({"MARKER_RECORDED": 5, "MARKER_RECORDED/local_activity": 5, "TIMER_STARTED": 1})
    stats = history_stats([one, two])
    assert stats.totals == [4, 6]
    assert stats.median == 5
    assert stats.per_type["MARKER_RECORDED/local_activity"] == 3.5


def test_the_bare_shape_has_the_products_typical_count_of_each_command() -> None:
    refund = Counter(
        {
            "MARKER_RECORDED": 9,
            "MARKER_RECORDED/local_activity": 8,
            "ACTIVITY_TASK_SCHEDULED": 1,
            "WORKFLOW_EXECUTION_SIGNALED": 4,
            "TIMER_STARTED": 2,
            "TIMER_CANCELED": 1,
            "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": 3,
            "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": 2,
        }
    )
    assert shape_of(history_stats([refund, refund])) == BareShape(
        local_activities=8, activities=1, signals=4, timers=2, upserts=3, cancelled_timers=1
    )


def test_no_history_is_an_empty_shape_not_an_error() -> None:
    stats = history_stats([])
    assert stats.totals == [] and stats.median == 0
    assert shape_of(stats) == BareShape(0, 0, 0, 0, 0, 0)


def at(kind: int, seconds: float) -> HistoryEvent:
    stamped = HistoryEvent(event_type=kind)  # type: ignore[arg-type]
    stamped.event_time.FromNanoseconds(int(seconds * 1e9))
    return stamped


def test_the_first_workflow_task_is_timed_from_its_own_events() -> None:
    kinds = EventType
    history = [
        at(kinds.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 100.0),
        at(kinds.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 100.0),
        at(kinds.EVENT_TYPE_WORKFLOW_TASK_STARTED, 100.5),
        at(kinds.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 100.625),
        at(kinds.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, 100.625),
        # The approve update's task: later events of the same types are not the first task's.
        at(kinds.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 103.0),
        at(kinds.EVENT_TYPE_WORKFLOW_TASK_STARTED, 103.25),
        at(kinds.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 104.0),
        at(kinds.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, 104.0),
    ]
    assert first_task(history) == FirstTask(waited=0.5, ran=0.125, answered=0.625)


def test_a_history_without_an_answered_update_has_no_first_task_timing() -> None:
    history = [
        at(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 1.0),
        at(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 1.0),
        at(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, 1.5),
        at(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2.0),
    ]
    assert first_task(history) is None
    assert history_stats([Counter({"X": 1})], [None]).first_tasks == []
