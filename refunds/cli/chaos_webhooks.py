"""The chaos run's shop (issue 13): a webhook receiver that answers 500 to the first try of
every fourth event and records every arrival, so the run can count each refund's events against
its state changes."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refunds.embedded.ports import free_port
from refunds.sandboxes.background import BackgroundServer


@dataclass
class ChaosReceiver:
    # refund_no -> sequence -> the event ids that arrived under it (one, unless invented)
    received: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: BackgroundServer | None = None
    url: str = ""

    async def handle(self, request: Request) -> Response:
        event: dict[str, Any] = json.loads(await request.body())
        event_id = str(event["id"])
        with self.lock:
            self.tries[event_id] = self.tries.get(event_id, 0) + 1
            if self.tries[event_id] == 1 and hashlib.sha256(event_id.encode()).digest()[0] < 64:
                return Response(status_code=500)  # a quarter of the events are retried
            if event.get("refund_no") and event.get("sequence"):
                lane = self.received.setdefault(str(event["refund_no"]), {})
                lane.setdefault(int(event["sequence"]), set()).add(event_id)
        return Response(status_code=200)

    def start(self) -> str:
        app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])
        self.server = BackgroundServer(app, free_port())
        self.url = self.server.start() + "/hook"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def snapshot(self) -> dict[str, dict[int, set[str]]]:
        with self.lock:
            return {
                no: {s: set(ids) for s, ids in lane.items()} for no, lane in self.received.items()
            }
