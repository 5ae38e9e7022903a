"""Waking the endpoints' delivery workflows (issue 13): signal-with-start, so a workflow that is
not running (never started, or ended) is started by the same call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from temporalio.client import Client

from refunds.domain.messages import EndpointRun
from refunds.domain.task_queues import webhook_task_queue
from refunds.settings import Settings
from workflows.webhook_delivery import WebhookEndpointDelivery, workflow_id

log = logging.getLogger("refunds.webhooks")

# A commit's wake-up is a courtesy (the sweep finds what it misses): never let it hang a step.
WAKE_TIMEOUT_SECONDS = 5.0


class TemporalRelay:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def wake(self, endpoint_ids: Collection[int]) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(self._wake(i) for i in sorted(endpoint_ids))), WAKE_TIMEOUT_SECONDS
        )

    async def _wake(self, endpoint_id: int) -> None:
        await self.client.start_workflow(
            WebhookEndpointDelivery.run,
            EndpointRun(endpoint_id, self.settings.delivery_timings()),
            id=workflow_id(endpoint_id),
            task_queue=webhook_task_queue(self.settings.task_queue),
            start_signal="wake",
        )


async def wake_quietly(client: Client, settings: Settings, endpoint_ids: Collection[int]) -> None:
    """For the API and the CLI: a Temporal that does not answer costs the wait for the sweep."""
    if not endpoint_ids:
        return
    try:
        await TemporalRelay(client, settings).wake(endpoint_ids)
    except Exception as exc:
        log.warning("webhook_wake_failed", extra={"error": type(exc).__name__})
