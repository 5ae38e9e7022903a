"""How the Temporal server handed a queue's workflow tasks to workers, from its Prometheus
metrics: straight to a poll already waiting (a sync match), or after the task was written to the
queue's backlog and read back, which is where a new workflow's first task waits when no poll
of the shared queue is there (the sticky queues take a run's later tasks)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

# `poll_success{namespace="default",partition="0",task_type="Workflow",taskqueue="q",...} 18`
_SAMPLE = re.compile(r"^(poll_success(?:_sync)?)\{([^}]*)\}\s+(\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
STICKY = "__sticky__"


@dataclass(frozen=True)
class Handed:
    """Workflow tasks a queue handed out, and how many of them to a poll already waiting."""

    tasks: int = 0
    to_waiting_poll: int = 0

    def __sub__(self, before: Handed) -> Handed:
        return Handed(self.tasks - before.tasks, self.to_waiting_poll - before.to_waiting_poll)


@dataclass(frozen=True)
class QueueMatching:
    """A task queue's workflow tasks: on its shared partition (every run's first task) and on
    its workers' sticky queues (the later ones)."""

    first: Handed = Handed()
    sticky: Handed = Handed()

    def __sub__(self, before: QueueMatching) -> QueueMatching:
        return QueueMatching(self.first - before.first, self.sticky - before.sticky)


def metric_name(task_queue: str) -> str:
    """The queue as the server labels it in metrics (anything but a letter, digit or _ is _)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", task_queue)


def queue_matching(metrics: str, task_queue: str) -> QueueMatching:
    """The counters for `task_queue`'s workflow tasks in a /metrics text (zeros if absent)."""
    counts: dict[tuple[str, bool], int] = {}
    queue = metric_name(task_queue)
    for name, labels_text, value in _SAMPLE.findall(metrics):
        labels = dict(_LABEL.findall(labels_text))
        if labels.get("taskqueue") != queue or labels.get("task_type") != "Workflow":
            continue
        key = (name, labels.get("partition") == STICKY)
        counts[key] = counts.get(key, 0) + int(float(value))

    def handed(sticky: bool) -> Handed:
        return Handed(
            counts.get(("poll_success", sticky), 0), counts.get(("poll_success_sync", sticky), 0)
        )

    return QueueMatching(handed(False), handed(True))


async def read_metrics(http: httpx.AsyncClient, url: str | None) -> str | None:
    """The server's /metrics text, or None when it has no metrics port or does not answer."""
    if url is None:
        return None
    try:
        response = await http.get(url)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None
