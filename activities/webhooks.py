"""The shops' webhook deliveries (issue 13): one signed POST per try, every try recorded.

Each try is one activity attempt: Temporal's retry policy is the backoff (up to
REFUNDS_WEBHOOK_RETRY_FOR), so a worker killed mid-try loses nothing, the attempt is retried.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import WebhookSteps
from refunds.db.models import WebhookEndpoint
from refunds.db.outbox import DeliveryTarget, OutboxRepository, WebhookEndpointRepository, envelope
from refunds.domain.errors import WebhookTargetRefused
from refunds.domain.messages import (
    DeliveryGaveUp,
    DeliveryHead,
    DeliveryOutcome,
    DeliveryTry,
    LaneHeads,
    LaneQuery,
)
from refunds.domain.outgoing import DeliveryState
from refunds.webhooks.signing import HEADER, signature_header
from refunds.webhooks.targets import check_scheme
from refunds.webhooks.transport import delivery_client

log = logging.getLogger("refunds.webhooks")

# The activity's failure types: refused targets are not tried again (a retry cannot fix them).
NOT_ACCEPTED = "WebhookNotAccepted"
TARGET_REFUSED = "WebhookTargetRefused"


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    valid_until = endpoint.previous_secret_valid_until
    if endpoint.previous_secret and valid_until is not None and valid_until > now:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def body_of(target: DeliveryTarget) -> bytes:
    return json.dumps(envelope(target.event), separators=(",", ":"), sort_keys=True).encode()


class WebhookActivities(WebhookSteps):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        allow_private_targets: bool = False,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.allow_private_targets = allow_private_targets
        # Connects only to the address it vetted, never follows redirects: a 3xx to an internal
        # address, or a DNS answer changed after the check, would walk around it.
        self.http = http or delivery_client(allow_private_targets)

    @activity.defn
    async def pending_lanes(self, query: LaneQuery) -> LaneHeads:
        async with self.sessionmaker() as session:
            endpoint = await WebhookEndpointRepository(session).find(query.endpoint_id)
            if endpoint is None:
                return LaneHeads(active=False)
            if not endpoint.enabled:
                return LaneHeads(active=True)
            heads = await OutboxRepository(session).lane_heads(
                query.endpoint_id, query.busy, query.limit
            )
        return LaneHeads(True, [DeliveryHead(i, lane) for i, lane in heads])

    @activity.defn
    async def deliver_event(self, attempt: DeliveryTry) -> DeliveryOutcome:
        async with self.sessionmaker() as session:
            target = await OutboxRepository(session).target(attempt.delivery_id)
        if target is None or target.delivery.state != DeliveryState.PENDING:
            return DeliveryOutcome(attempt.delivery_id)  # settled meanwhile, or deleted
        try:
            # The address is vetted where it is connected to (`webhooks.transport`), the one
            # DNS lookup of this try; a kept-alive connection was vetted when it was opened.
            check_scheme(target.endpoint.url)
            code, latency_ms, error = await self._post(target, attempt.timeout)
        except WebhookTargetRefused as refused:
            await self._record(target, None, 0, str(refused), delivered=False)
            raise ApplicationError(str(refused), type=TARGET_REFUSED, non_retryable=True) from None
        delivered = code is not None and 200 <= code < 300
        await self._record(target, code, latency_ms, error, delivered=delivered)
        if not delivered:
            raise ApplicationError(error or f"the receiver answered {code}", type=NOT_ACCEPTED)
        return DeliveryOutcome(attempt.delivery_id, code)

    @activity.defn
    async def give_up_delivery(self, gave_up: DeliveryGaveUp) -> None:
        async with self.sessionmaker.begin() as session:
            outbox = OutboxRepository(session)
            target = await outbox.target(gave_up.delivery_id)
            if target is None or target.delivery.state != DeliveryState.PENDING:
                return
            await outbox.settle(gave_up.delivery_id, target.endpoint.id, delivered=False)
        log.error(
            "webhook_delivery_failed",
            extra={
                "refund_no": target.event.refund_no,
                "event_id": target.event.event_id,
                "endpoint_id": target.endpoint.id,
                "error": gave_up.error[:200],
            },
        )

    async def _post(
        self, target: DeliveryTarget, timeout: float
    ) -> tuple[int | None, int, str | None]:
        body = body_of(target)
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "refunds-webhooks/1",
            HEADER: signature_header(
                signing_secrets(target.endpoint, now), body, int(now.timestamp())
            ),
            "Refunds-Event-Id": target.event.event_id,
        }
        started = time.monotonic()
        try:
            response = await self.http.post(
                target.endpoint.url, content=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            return None, _ms_since(started), f"{type(exc).__name__}: {exc}"[:500]
        code = response.status_code
        error = None if 200 <= code < 300 else f"the receiver answered {code}"
        return code, _ms_since(started), error

    async def _record(
        self,
        target: DeliveryTarget,
        code: int | None,
        latency_ms: int,
        error: str | None,
        *,
        delivered: bool,
    ) -> None:
        async with self.sessionmaker.begin() as session:
            outbox = OutboxRepository(session)
            await outbox.record_attempt(target.delivery.id, code, latency_ms, error)
            if delivered:
                await outbox.settle(target.delivery.id, target.endpoint.id, delivered=True)
        log.info(
            "webhook_attempt",
            extra={
                "refund_no": target.event.refund_no,
                "event_id": target.event.event_id,
                "endpoint_id": target.endpoint.id,
                "status_code": code,
                "latency_ms": latency_ms,
            },
        )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
