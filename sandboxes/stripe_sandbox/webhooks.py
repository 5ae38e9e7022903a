"""Signed webhook delivery, one at a time in order, exactly as Stripe signs them."""

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


class WebhookSender:
    """A single queue keeps deliveries in the order events happened (unless a fault reorders).

    Each delivery is one attempt, recorded on the event record; `/_sandbox/events/{id}/resend`
    redelivers. The pipeline's polling covers lost webhooks, which is what tests exercise.
    """

    def __init__(self, url: str | None, secret: str | None, on_change: Callable[[], None]) -> None:
        self.url = url
        self.secret = secret
        self._on_change = on_change
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._client: httpx.AsyncClient | None = None
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=10.0)
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._client is not None:
            await self._client.aclose()

    def enqueue(self, record: dict[str, Any]) -> None:
        if self.url is not None:
            self._queue.put_nowait(record)

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
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
