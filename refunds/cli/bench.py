"""`refunds bench`: end-to-end refund throughput and latency against a running `refunds dev`.

Each refund is real: an order paid at the Stripe sandbox, a customer's request, an approver's
decision, the gateway call, the webhook, restores and finalize. Numbers come from this command,
never from a timed test.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from refunds.domain.messages import RefundStatus
from refunds.sandboxes.payments import pay_with_stripe
from refunds.settings import Settings
from workflows.refund import RefundWorkflow, workflow_id


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _one(
    api: httpx.AsyncClient,
    temporal: Client,
    info: dict[str, Any],
    settings: Settings,
    timings: dict[str, list[float]],
) -> None:
    tokens = info["tokens"]
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    amount = 1000
    assert settings.stripe_api_key is not None
    ref = await asyncio.to_thread(
        pay_with_stripe, info["stripe_api_base"], settings.stripe_api_key, amount, "USD"
    )
    order_no = f"BENCH-{uuid.uuid4().hex[:12]}"
    order = {
        "order_no": order_no,
        "user_id": "alice",
        "channel": "stripe",
        "currency": "USD",
        "total_amount": amount,
        "paid_amount": amount,
        "payment_ref": ref,
        "status": "paid",
        "items": [{"sku": "BENCH-SKU", "quantity": 1, "unit_amount": amount}],
    }
    (await api.post("/v1/orders", json=order, headers=admin)).raise_for_status()
    started = time.perf_counter()
    response = await api.post(
        "/v1/refunds",
        json={"order_no": order_no, "amount": amount},
        headers={"Authorization": f"Bearer {tokens['customer']}"},
    )
    response.raise_for_status()
    applied = time.perf_counter()
    refund_no = response.json()["refund_no"]
    approver = {"Authorization": f"Bearer {tokens['approver']}"}
    (
        await api.post(f"/v1/refunds/{refund_no}/approve", json={}, headers=approver)
    ).raise_for_status()
    approved = time.perf_counter()
    # Wait on the workflow itself: polling the API would load the very process being measured.
    handle = temporal.get_workflow_handle_for(RefundWorkflow.run, workflow_id(refund_no))
    state = await handle.result()
    done = time.perf_counter()
    if state.status != RefundStatus.SUCCEEDED:
        raise RuntimeError(f"refund {refund_no} ended {state.status}")
    timings["apply"].append(applied - started)
    timings["approve"].append(approved - applied)
    timings["approve_to_succeeded"].append(done - approved)


async def _bench(info: dict[str, Any], settings: Settings, count: int, concurrency: int) -> None:
    timings: dict[str, list[float]] = {"apply": [], "approve": [], "approve_to_succeeded": []}
    gate = asyncio.Semaphore(concurrency)
    temporal = await Client.connect(info["temporal_address"])

    async def guarded(api: httpx.AsyncClient) -> None:
        async with gate:
            await _one(api, temporal, info, settings, timings)

    async with httpx.AsyncClient(base_url=info["api_url"], timeout=120) as api:
        started = time.perf_counter()
        await asyncio.gather(*(guarded(api) for _ in range(count)))
        elapsed = time.perf_counter() - started
    print(
        f"{count} refunds, concurrency {concurrency}: {elapsed:.1f} s, "
        f"{count / elapsed:.1f} refunds/s end to end"
    )
    for name, values in timings.items():
        print(
            f"  {name:22} p50 {statistics.median(values) * 1000:7.0f} ms   "
            f"p95 {_pct(values, 0.95) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
        )


def run_bench(data_dir: Path, count: int, concurrency: int) -> int:
    dev_json = data_dir / "dev.json"
    if not dev_json.exists():
        print(f"no {dev_json}: start `refunds dev --data-dir {data_dir}` first")
        return 2
    info = json.loads(dev_json.read_text())
    settings = Settings(data_dir=data_dir, dev_secrets=True)  # the running dev stack's secrets
    asyncio.run(_bench(info, settings, count, concurrency))
    return 0
