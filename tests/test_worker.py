"""The worker process as ops run it: its Temporal SDK metrics, scraped like Prometheus would."""

from __future__ import annotations

import asyncio

import httpx

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
