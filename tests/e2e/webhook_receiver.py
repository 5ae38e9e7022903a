"""A shop's webhook receiver for the tests (issue 13): it verifies each signature, answers 500 to
the first tries of each event as told, and records every arrival."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refunds.embedded.ports import free_port
from refunds.sandboxes.background import BackgroundServer
from refunds.webhooks.signing import HEADER, verify
from tests.factories import Shop


@dataclass
class Arrival:
    event: dict[str, Any]
    signature: str
    body: bytes
    answered: int
    verified_with: list[str]
    host: str = ""  # the Host header the delivery carried


@dataclass
class Receiver:
    fail_first: int = 0  # per event id
    fail_first_arrivals: int = 0  # the very first arrivals, whatever their event
    hold_first_seconds: float = 0.0  # the very first arrival is answered this late
    secrets: list[str] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        event = json.loads(body)
        header = request.headers.get(HEADER, "")
        with self.lock:
            tries = sum(1 for a in self.arrivals if a.event["id"] == event["id"])
            first_ever = not self.arrivals
            failing = tries < self.fail_first or len(self.arrivals) < self.fail_first_arrivals
            answered = 500 if failing else 200
            verified = [s for s in self.secrets if verify(header, body, s)]
            if not verified:
                answered = 400
            host = request.headers.get("host", "")
            self.arrivals.append(Arrival(event, header, body, answered, verified, host))
        if first_ever and self.hold_first_seconds:
            await asyncio.sleep(self.hold_first_seconds)
        return Response(status_code=answered)

    def of(self, refund_no: str) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.event["refund_no"] == refund_no]

    def accepted(self, refund_no: str) -> list[dict[str, Any]]:
        return [a.event for a in self.of(refund_no) if a.answered == 200]


@contextmanager
def running_receiver(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = BackgroundServer(app, free_port())
    receiver.url = server.start() + "/hook"
    try:
        yield receiver
    finally:
        server.stop()


@asynccontextmanager
async def subscribed(
    shop: Shop, receiver: Receiver, types: list[str] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """An endpoint on the receiver, removed afterwards (no later test pays for its deliveries)."""
    body = {"url": receiver.url, "event_types": types or ["*"]}
    response = await shop.http.post("/v1/webhook_endpoints", json=body, headers=shop.admin)
    assert response.status_code == 201, response.text
    endpoint = dict(response.json())
    receiver.secrets.append(endpoint["secret"])
    try:
        yield endpoint
    finally:
        await shop.http.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=shop.admin)


async def wait_until(check: Any, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
