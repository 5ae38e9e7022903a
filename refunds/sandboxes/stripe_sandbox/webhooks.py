"""Signed webhook delivery, in order per refund, exactly as Stripe signs them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger("sandbox.stripe.webhooks")


def sign(payload: str, secret: str, timestamp: int) -> str:
    """`Stripe-Signature: t=<unix>,v1=<hex hmac_sha256(secret, "t.payload")>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


LANES = 8


class WebhookSender:
    """Events of one refund go through one lane, in the order they happened (unless a fault
    reorders); lanes deliver concurrently, as Stripe does across objects.

    Each delivery is one attempt, recorded on the event record; `/_sandbox/events/{id}/resend`
    redelivers. The pipeline's polling covers lost webhooks, which is what tests exercise.
    """

    def __init__(self, url: str | None, secret: str | None, on_change: Callable[[], None]) -> None:
        self.url = url
        self.secret = secret
        self._on_change = on_change
        self._lanes: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in range(LANES)]
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=10.0)
        self._workers = [asyncio.create_task(self._run(lane)) for lane in self._lanes]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._client is not None:
            await self._client.aclose()

    def enqueue(self, record: dict[str, Any]) -> None:
        if self.url is not None:
            key = str(record.get("refund_no") or record.get("refund_id") or record["event"]["id"])
            self._lanes[hash(key) % LANES].put_nowait(record)

    async def _run(self, lane: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            record = await lane.get()
            await self._deliver(record)

    async def _deliver(self, record: dict[str, Any]) -> None:
        assert self._client is not None and self.url is not None
        payload = json.dumps(record["event"], indent=2)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.secret:
            headers["Stripe-Signature"] = sign(payload, self.secret, int(time.time()))
        attempt: dict[str, Any] = {"at": time.time(), "status_code": None, "error": None}
        try:
            response = await self._client.post(self.url, content=payload, headers=headers)
            attempt["status_code"] = response.status_code
        except httpx.HTTPError as exc:
            attempt["error"] = f"{type(exc).__name__}: {exc}"
        log.info(
            "webhook delivered event=%s type=%s status=%s",
            record["event"]["id"],
            record["event"]["type"],
            attempt["status_code"] or attempt["error"],
        )
        record["deliveries"].append(attempt)
        self._on_change()
