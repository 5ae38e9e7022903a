"""Stripe adapter (SPEC §6) on the official `stripe` package.

The client is synchronous; each call runs in a worker thread (the request rate is held by the
channel's task queue for the whole fleet: `worker.py`, design §6). The
client never retries (`max_network_retries=0`): Temporal's retry policy owns retries, and the
answer table in `gateways.stripe_answers` tells it which failures are refusals (permanent) and
which are transient or unknown (retried behind the lookup-first create).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe

from refunds.domain.messages import (
    Channel,
    GatewayNotification,
    GatewayPayment,
    GatewayRefund,
    GatewayRefundPage,
    GatewayStatus,
    RefundToFind,
    RefundToPay,
)
from refunds.gateways.answers import lookup_before_create
from refunds.gateways.base import InvalidNotification, ParsedNotification
from refunds.gateways.records import stripe_record
from refunds.gateways.stripe_answers import stripe_gateway_error
from refunds.settings import Settings

log = logging.getLogger("gateways.stripe")
T = TypeVar("T")

STATUS_MAP = {
    "pending": GatewayStatus.PROCESSING,
    "requires_action": GatewayStatus.PROCESSING,
    "succeeded": GatewayStatus.SUCCEEDED,
    "failed": GatewayStatus.FAILED,
    "canceled": GatewayStatus.FAILED,
}
REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
CHARGE_EVENTS = frozenset({"charge.refunded"})
# What the shop's Stripe webhook endpoint subscribes to (its `enabled_events`); the webhook route
# still accepts and records every event above. `refund.updated` carries each status a refund
# takes (succeeded, failed, failed after succeeding): one webhook for a happy refund.
# `refund.failed`, Stripe's own event for a failed refund, repeats a failure (recorded as a
# duplicate): a second word on money that did not reach the customer, paid only when a refund
# fails. Left out: `refund.created` and `charge.refunded` say "pending", which the
# create's answer already said; `charge.refund.updated` repeats `refund.updated`. A lost
# webhook is caught by the workflow's poll. Stripe sends `refund.*` events for refunds of
# charges from API version 2024-10-28.acacia on: the endpoint's version must be that or later.
SUBSCRIBED_EVENTS = ("refund.updated", "refund.failed")
LIST_PAGE_SIZE = 100
# Stripe's own event for a refund that failed, sent also when it fails after succeeding.
FAILED_EVENT = "refund.failed"
# What a PaymentIntent id can be: anything else is no payment of Stripe's, and is never put in
# a request path.
PAYMENT_INTENT_ID = re.compile(r"^pi_[A-Za-z0-9]{1,250}$")
# Stripe's limit on a metadata value; the full reason stays in our ledger.
METADATA_VALUE_LIMIT = 500


@dataclass(frozen=True)
class StripeConfig:
    api_key: str
    api_base: str | None
    webhook_secret: str
    timeout_seconds: float = 30.0
    webhook_tolerance_seconds: int = 300


def map_status(status: str | None) -> GatewayStatus:
    """Unknown statuses are treated as still in flight: never guess an outcome."""
    return STATUS_MAP.get(status or "", GatewayStatus.PROCESSING)


class StripeGateway:
    """`Gateway` for Stripe: refunds idempotent by `refund_no`, webhooks verified by signature."""

    channel = Channel.STRIPE

    def __init__(self, config: StripeConfig) -> None:
        self.config = config
        base = {"api": config.api_base} if config.api_base else None
        self._client = stripe.StripeClient(
            config.api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=config.timeout_seconds),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        assert settings.stripe_api_key and settings.stripe_webhook_secret  # filled by Settings
        return cls(
            StripeConfig(
                api_key=settings.stripe_api_key,
                api_base=settings.stripe_api_base,
                webhook_secret=settings.stripe_webhook_secret,
                timeout_seconds=settings.gateway_call_timeout.total_seconds(),
                webhook_tolerance_seconds=int(settings.webhook_tolerance.total_seconds()),
            )
        )

    async def create_refund(self, refund: RefundToPay) -> GatewayRefund:
        # Idempotency keys live ~24h at Stripe: the metadata lookup covers later retries.
        existing = await lookup_before_create(self.get_refund, refund)
        if existing is not None:
            log.info(
                "gateway_refund_found",
                extra={
                    "gateway": "stripe",
                    "refund_no": refund.refund_no,
                    "id": existing.gateway_refund_id,
                },
            )
            return existing
        with _answers():
            created = await self._call(
                self._client.v1.refunds.create,
                params=_create_params(refund),
                options={"idempotency_key": refund.refund_no},
            )
            log.info(
                "gateway_refund_created",
                extra={"gateway": "stripe", "refund_no": refund.refund_no, "id": created.id},
            )
            return _to_gateway_refund(refund.refund_no, created)

    async def get_refund(self, lookup: RefundToFind) -> GatewayRefund | None:
        with _answers():
            try:
                found = await self._find(lookup.payment_ref, lookup.refund_no)
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_missing":
                    raise
                return None  # an unknown payment has no refunds
            return None if found is None else _to_gateway_refund(lookup.refund_no, found)

    async def get_payment(self, payment_ref: str) -> GatewayPayment | None:
        """The PaymentIntent: `amount_received` is what Stripe took (0 until it succeeds)."""
        if not PAYMENT_INTENT_ID.fullmatch(payment_ref):
            return None
        with _answers():
            try:
                intent = await self._call(self._client.v1.payment_intents.retrieve, payment_ref)
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_missing":
                    raise
                return None
            return GatewayPayment(
                payment_ref=str(intent.id),
                succeeded=intent.status == "succeeded",
                gateway_status=str(intent.status),
                captured=int(intent.amount_received or 0),
                currency=str(intent.currency).upper(),
            )

    async def _find(self, payment_ref: str, refund_no: str) -> stripe.Refund | None:
        """Walk the payment's refunds page by page (each page a rate-limited call)."""
        params: dict[str, Any] = {"payment_intent": payment_ref, "limit": LIST_PAGE_SIZE}
        while True:
            page = await self._call(self._client.v1.refunds.list, params=params)
            for item in page.data:
                if _refund_no(item) == refund_no:
                    return item
            if not page.has_more or not page.data:
                return None
            params = params | {"starting_after": page.data[-1].id}

    async def list_refunds(
        self, created_from: int, created_to: int, cursor: str | None, limit: int = LIST_PAGE_SIZE
    ) -> GatewayRefundPage:
        """`ListsRefunds`: the account's refunds of the window, newest first as Stripe lists
        them. A window in the past is stable: newer refunds sort before it, so the cursor
        walk neither repeats nor skips."""
        params: dict[str, Any] = {
            "created": {"gte": created_from, "lt": created_to},
            "limit": limit,
        }
        if cursor is not None:
            params["starting_after"] = cursor
        with _answers():
            page = await self._call(self._client.v1.refunds.list, params=params)
            refunds = [_to_gateway_refund(_refund_no(item), item) for item in page.data]
        next_cursor = page.data[-1].id if page.has_more and page.data else None
        return GatewayRefundPage(refunds=refunds, next_cursor=next_cursor)

    async def list_failed_refunds(
        self, failed_from: int, failed_to: int, cursor: str | None, limit: int = LIST_PAGE_SIZE
    ) -> GatewayRefundPage:
        """`ListsFailedRefunds`: the `refund.failed` events of the window (the Events API keeps
        30 days, whether or not the webhook endpoint subscribes), each refund as the event
        carries it. The cursor is an event id: the same refund failing twice is two entries."""
        params: dict[str, Any] = {
            "type": FAILED_EVENT,
            "created": {"gte": failed_from, "lt": failed_to},
            "limit": limit,
        }
        if cursor is not None:
            params["starting_after"] = cursor
        with _answers():
            page = await self._call(self._client.v1.events.list, params=params)
            refunds = [_failed_refund(event) for event in page.data]
        next_cursor = page.data[-1].id if page.has_more and page.data else None
        return GatewayRefundPage(
            refunds=[r for r in refunds if r is not None], next_cursor=next_cursor
        )

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> ParsedNotification:
        signature = _header(headers, "stripe-signature")
        try:
            # The signature alone, then one parse: `Webhook.construct_event` would parse the
            # body a second time into a StripeObject nothing here reads.
            stripe.WebhookSignature.verify_header(
                body.decode("utf-8"),
                signature,
                self.config.webhook_secret,
                tolerance=self.config.webhook_tolerance_seconds,
            )
            payload = json.loads(body)
        except stripe.SignatureVerificationError as exc:
            raise InvalidNotification("invalid_signature", str(exc)) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidNotification("invalid_payload", f"unreadable webhook body: {exc}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            raise InvalidNotification("invalid_payload", "webhook body is not a Stripe event")
        event_type = str(payload.get("type", ""))
        return ParsedNotification(
            notification_id=payload["id"],
            event_type=event_type,
            refunds=list(_notifications(payload, event_type)),
            # A charge carries the card, the payer's name, email and address: never kept.
            payload=stripe_record(payload),
        )


@contextmanager
def _answers() -> Iterator[None]:
    """Whatever a call raises (the client's errors, an answer we cannot read) leaves as the
    domain error `gateways.stripe_answers` gives it: only a known refusal is permanent."""
    try:
        yield
    except Exception as exc:
        raise stripe_gateway_error(exc) from exc


def _create_params(refund: RefundToPay) -> dict[str, Any]:
    metadata = {"refund_no": refund.refund_no, "order_no": refund.order_no}
    if refund.reason:
        # Stripe's own `reason` is an enum (duplicate, fraudulent, ...): free text goes here.
        metadata["reason"] = refund.reason[:METADATA_VALUE_LIMIT]
    return {"payment_intent": refund.payment_ref, "amount": refund.amount, "metadata": metadata}


def _to_gateway_refund(refund_no: str, refund: stripe.Refund) -> GatewayRefund:
    return GatewayRefund(
        refund_no=refund_no,
        gateway_refund_id=refund.id,
        status=map_status(refund.status),
        amount=int(refund.amount),
        currency=str(refund.currency).upper(),
        failure_reason=getattr(refund, "failure_reason", None),
        payment_ref=_id_of(getattr(refund, "payment_intent", None)),
    )


def _failed_refund(event: stripe.Event) -> GatewayRefund | None:
    refund = event.data.object
    if not isinstance(refund, stripe.Refund):  # the client types each object by its `object`
        return None
    return _to_gateway_refund(_refund_no(refund), refund)


def _currency(value: object) -> str | None:
    """Stripe writes ISO codes in lower case; the ledger in upper case."""
    return value.upper() if isinstance(value, str) and value else None


def _id_of(value: object) -> str | None:
    """An expandable field's id: Stripe sends the id, or the object when it was expanded (a
    `StripeObject` from the client, a dict in a webhook body)."""
    if value is None or isinstance(value, str):
        return value
    found = value.get("id") if isinstance(value, dict) else getattr(value, "id", None)
    return found if isinstance(found, str) else None


def _metadata(refund: stripe.Refund) -> dict[str, Any]:
    metadata = getattr(refund, "metadata", None)
    return metadata.to_dict() if metadata is not None else {}


def _refund_no(refund: stripe.Refund) -> str:
    """Ours carry `metadata.refund_no`; "" marks one made elsewhere (the dashboard, another
    system), which the reconciliation judges, not the adapter."""
    return str(_metadata(refund).get("refund_no") or "")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _notifications(payload: dict[str, Any], event_type: str) -> Iterator[GatewayNotification]:
    obj = (payload.get("data") or {}).get("object") or {}
    if event_type in REFUND_EVENTS and obj.get("object") == "refund":
        refunds = [obj]
    elif event_type in CHARGE_EVENTS and obj.get("object") == "charge":
        # Newer API versions do not embed refunds in the charge: then other events carry them.
        refunds = ((obj.get("refunds") or {}).get("data")) or []
    else:
        return
    for refund in refunds:
        refund_no = (refund.get("metadata") or {}).get("refund_no")
        if not refund_no:
            continue  # not one of ours (created in the dashboard, or another system)
        yield GatewayNotification(
            refund_no=refund_no,
            status=map_status(refund.get("status")),
            gateway_refund_id=refund.get("id"),
            source="webhook",
            event_id=payload["id"],
            event_type=event_type,
            failure_reason=refund.get("failure_reason"),
            amount=refund.get("amount"),
            payment_ref=_id_of(refund.get("payment_intent")),
            currency=_currency(refund.get("currency")),
        )
