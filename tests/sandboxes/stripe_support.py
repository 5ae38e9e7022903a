"""A running Stripe sandbox plus a webhook receiver, shared by sandbox and gateway tests."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refunds.embedded.ports import free_port
from refunds.sandboxes.background import BackgroundServer
from refunds.sandboxes.stripe_sandbox import StripeSandboxConfig, create_app

REFUND_DELAY = 0.2
DAY = 86_400


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookRecorder:
    """Records every webhook it receives, so tests can assert what Stripe would have sent."""

    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            delivery = Delivery(dict(request.headers), await request.body())
            with self._lock:
                self.deliveries.append(delivery)
            return Response(status_code=200)

        return Starlette(routes=[Route("/webhooks/stripe", receive, methods=["POST"])])

    def for_refund(self, refund_no: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if _refund_nos(d.event) & {refund_no}]

    def wait_for(
        self, refund_no: str, until: Callable[[list[Delivery]], bool], timeout: float = 5.0
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.for_refund(refund_no)
            if until(found):
                return found
            time.sleep(0.02)
        raise AssertionError(f"webhooks for {refund_no}: {[d.event['type'] for d in found]}")


def _refund_nos(event: dict[str, Any]) -> set[str]:
    obj = event["data"]["object"]
    refunds = obj["refunds"]["data"] if obj["object"] == "charge" else [obj]
    return {r["metadata"].get("refund_no") for r in refunds}


def types(deliveries: list[Delivery]) -> list[str]:
    return [d.event["type"] for d in deliveries]


@dataclass
class StripeStack:
    """The sandbox URL, its keys, a Stripe client on it, and helpers for the control API."""

    url: str
    api_key: str
    webhook_secret: str
    recorder: WebhookRecorder
    control: httpx.Client

    def client(self, timeout: float = 10.0) -> stripe.StripeClient:
        return stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.url},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def pay(self, amount: int, payment_method: str = "pm_card_visa") -> str:
        """A succeeded PaymentIntent, made through the official client."""
        intent = self.client().v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": "usd",
                "payment_method": payment_method,
                "confirm": True,
            }
        )
        assert intent.status == "succeeded"
        return intent.id

    def fault(self, **spec: Any) -> None:
        self.control.post("/_sandbox/faults", json=spec).raise_for_status()

    def refunds(self, refund_no: str) -> tuple[list[dict[str, Any]], int]:
        """The sandbox's refunds for `refund_no`, and how many create requests reached it."""
        body = self.control.get("/_sandbox/refunds", params={"refund_no": refund_no}).json()
        return body["data"], body["create_requests"][refund_no]

    def events(self, refund_no: str) -> list[dict[str, Any]]:
        return self.control.get("/_sandbox/events", params={"refund_no": refund_no}).json()["data"]

    def backdate(self, refund_id: str, created: int) -> None:
        """Move the refund's `created` to `created` (unix seconds)."""
        response = self.control.post(
            f"/_sandbox/refunds/{refund_id}/created", json={"created": created}
        )
        response.raise_for_status()


def new_refund_no() -> str:
    return f"R-{secrets.token_hex(6)}"


def past_day() -> int:
    """The start of a random day of 2001-2019: a window no other test's refunds fall into
    (the session's sandbox is shared, and refunds made now are never that old)."""
    return 978_307_200 + secrets.randbelow(6_900) * DAY


@contextmanager
def running_sandbox(
    recorder: WebhookRecorder | None = None,
    state_file: Path | None = None,
    port: int | None = None,
    api_key: str | None = None,
    webhook_secret: str | None = None,
    webhook_events: frozenset[str] | None = None,
) -> Iterator[StripeStack]:
    """Start a webhook receiver and a sandbox posting to it (the events `webhook_events` names,
    default all); stop both afterwards."""
    recorder = recorder or WebhookRecorder()
    receiver = BackgroundServer(recorder.app(), free_port())
    receiver_url = receiver.start()
    api_key = api_key or "sk_test_" + secrets.token_hex(12)
    webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(16)
    config = StripeSandboxConfig(
        api_key=api_key,
        webhook_url=f"{receiver_url}/webhooks/stripe",
        webhook_secret=webhook_secret,
        refund_delay=REFUND_DELAY,
        state_file=state_file,
        webhook_events=webhook_events,
    )
    server = BackgroundServer(create_app(config), port or free_port())
    url = server.start()
    control = httpx.Client(base_url=url, timeout=10.0)
    try:
        yield StripeStack(url, api_key, webhook_secret, recorder, control)
    finally:
        control.close()
        server.stop()
        receiver.stop()
