"""Task queue names, shared by the workflow (which routes gateway calls) and the worker."""

from __future__ import annotations

from refunds.domain.messages import Channel


def gateway_task_queue(task_queue: str, channel: Channel) -> str:
    """The queue of one channel's gateway calls: Temporal holds its rate for the whole fleet
    (`max_task_queue_activities_per_second`), so N workers never send N times the limit."""
    return f"{task_queue}-gateway-{channel.value}"


def webhook_task_queue(task_queue: str) -> str:
    """The queue of the shops' webhook deliveries (issue 13): slow receivers hold its slots,
    never the refunds' ledger steps."""
    return f"{task_queue}-webhooks"
