"""The worker process as ops run it: its Temporal SDK metrics, scraped like Prometheus would."""

from __future__ import annotations

import asyncio
import time

import httpx
from temporalio.api.enums.v1 import RateLimitSource, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from refunds.domain.messages import Channel
from refunds.domain.task_queues import gateway_task_queue
from tests.factories import Shop


def sample(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` that carry all of `labels`."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def scrape(port: int) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    return response.text


async def test_worker_serves_sdk_metrics_of_its_refunds(shop: Shop) -> None:
    port = shop.stack.settings.worker_metrics_port
    assert port is not None
    gateway_calls = {
        "name": "temporal_activity_execution_latency_count",
        "activity_type": "refund_at_gateway",
        "workflow_type": "Refund",
    }
    completed = {"name": "temporal_workflow_completed", "workflow_type": "Refund"}
    before = await scrape(port)
    order = await shop.order(amount=1200)
    refund = await shop.refund(order, 1200)
    await shop.approve(refund["refund_no"])
    await shop.wait_status(refund["refund_no"], "succeeded")
    # The run completes just after its last ledger write: give the metric a moment.
    for _ in range(50):
        after = await scrape(port)
        if sample(after, **completed) > sample(before, **completed):
            break
        await asyncio.sleep(0.1)
    assert sample(after, **completed) >= sample(before, **completed) + 1
    assert sample(after, **gateway_calls) >= sample(before, **gateway_calls) + 1


async def test_each_channel_queue_carries_its_gateway_rate_limit(
    shop: Shop, temporal: Client
) -> None:
    """The limit is the fleet's: the Temporal server holds it for the channel's queue, set from
    REFUNDS_*_RATE_LIMIT by the workers polling it (the per-process limiter is gone)."""
    settings = shop.stack.settings
    order = await shop.order(amount=900)  # a gateway call, so the queue has seen its workers
    refund = await shop.refund(order, 900)
    await shop.approve(refund["refund_no"])
    await shop.wait_status(refund["refund_no"], "succeeded")
    expected = {
        Channel.STRIPE: settings.stripe_rate_limit,
        Channel.WECHATPAY: settings.wechatpay_rate_limit,
    }
    for channel, rate in expected.items():
        described = await temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=temporal.namespace,
                task_queue=TaskQueue(name=gateway_task_queue(settings.task_queue, channel)),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                report_config=True,
            )
        )
        limit = described.effective_rate_limit
        assert (limit.requests_per_second, limit.rate_limit_source) == (
            rate,
            RateLimitSource.RATE_LIMIT_SOURCE_WORKER,
        )
    # and the refund's gateway call ran there, not on the main queue
    history = await temporal.get_workflow_handle(f"refund-{refund['refund_no']}").fetch_history()
    [scheduled] = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled.task_queue.name == gateway_task_queue(settings.task_queue, Channel.STRIPE)


async def test_every_gateway_call_the_worker_admits_gets_a_thread_at_once() -> None:
    """The gateway clients block a thread per call. With Python's default pool (6 threads on
    2 cores) a stalling gateway made admitted calls wait for a thread until they timed out
    (`refunds chaos` sent most refunds abnormal). Here every call both channel queues admit, and
    as many again still draining after their activity timed out, run at the same time."""
    from worker import GATEWAY_CALLS_PER_CHANNEL, gateway_executor

    calls = 2 * GATEWAY_CALLS_PER_CHANNEL * len(Channel)
    started: list[float] = []

    def stalled_gateway_call() -> None:
        started.append(time.monotonic())
        time.sleep(0.5)

    loop = asyncio.get_running_loop()
    with gateway_executor() as pool:
        began = time.monotonic()
        await asyncio.gather(
            *(loop.run_in_executor(pool, stalled_gateway_call) for _ in range(calls))
        )
    assert len(started) == calls
    # All started before the first one could have finished: none waited for a thread.
    assert max(started) - began < 0.5
