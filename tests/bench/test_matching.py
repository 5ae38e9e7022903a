"""A queue's workflow tasks read from the Temporal server's Prometheus text."""

from __future__ import annotations

from refunds.bench.matching import Handed, QueueMatching, metric_name, queue_matching


def sample(name: str, partition: str, task_type: str, queue: str, value: int) -> str:
    """One counter line as the dev server prints it (labels in its order, fewer of them)."""
    labels = (
        f'namespace="default",operation="TaskQueueMgr",partition="{partition}",'
        f'task_type="{task_type}",taskqueue="{queue}",worker_version="__unversioned__"'
    )
    return f"{name}{{{labels}}} {value}"


Q = "bench_e0c75efe"
METRICS = "\n".join(
    [
        "# HELP poll_success poll_success counter",
        "# TYPE poll_success counter",
        sample("poll_success", "0", "Workflow", Q, 400),
        sample("poll_success", "__sticky__", "Workflow", Q, 1200),
        sample("poll_success", "0", "Activity", Q, 77),
        sample("poll_success", "0", "Workflow", f"{Q}_webhooks", 9),
        sample("poll_success_sync", "0", "Workflow", Q, 18),
        sample("poll_success_sync", "__sticky__", "Workflow", Q, 448),
        sample("poll_timeouts", "0", "Workflow", Q, 3),
    ]
)


def test_the_server_labels_a_queue_with_underscores() -> None:
    assert metric_name("bench-e0c75efe") == "bench_e0c75efe"


def test_first_and_sticky_workflow_tasks_of_the_queue_only() -> None:
    assert queue_matching(METRICS, "bench-e0c75efe") == QueueMatching(
        first=Handed(tasks=400, to_waiting_poll=18), sticky=Handed(tasks=1200, to_waiting_poll=448)
    )


def test_a_phase_is_the_difference_of_two_reads_and_an_absent_queue_is_zeros() -> None:
    before = QueueMatching(Handed(100, 10), Handed(300, 100))
    assert queue_matching(METRICS, "bench-e0c75efe") - before == QueueMatching(
        Handed(300, 8), Handed(900, 348)
    )
    assert queue_matching(METRICS, "bench-bare-1") == QueueMatching()
