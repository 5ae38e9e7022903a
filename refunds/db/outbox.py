"""The transactional outbox of the shops' webhooks (issue 13): events written in the transaction
of the change they report, one delivery row per subscribed endpoint, and the reads and writes of
the delivery workflows and the API. The caller commits, once.

An event and its deliveries are written by one statement (`event_statement`), which also carries
the writes of the change it reports when that change is a ledger step (`refunds.db.step_writes`).
`session.info[WOKEN]` collects the endpoints that got new deliveries in this transaction: after
the commit, the caller wakes their delivery workflows (`refunds.runtime.webhook_relay`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from refunds.db.models import (
    DeliveryAttempt,
    EventDelivery,
    OutgoingEvent,
    ReconciliationFinding,
    WebhookEndpoint,
)
from refunds.db.records import RefundRecord, table
from refunds.domain.errors import WebhookEndpointNotFound
from refunds.domain.outgoing import ALL_TYPES, DeliveryState, EventType
from refunds.webhooks.signing import new_secret

WOKEN = "webhook_endpoints_woken"


def iso(at: datetime) -> str:
    """UTC, written as the API writes it (`...Z`), so a receiver compares the two as text."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def refund_payload(refund: RefundRecord) -> dict[str, Any]:
    """The refund as `GET /v1/refunds/{no}` shows it, without its timeline (JSON-ready)."""
    return {
        "refund_no": refund.refund_no,
        "order_no": refund.order_no,
        "amount": refund.amount,
        "currency": refund.currency,
        "channel": refund.channel,
        "reason": refund.reason,
        "items": list(refund.items),
        "source": refund.source,
        "requested_by": refund.requested_by,
        "approved_by": refund.approved_by,
        "gateway_refund_id": refund.gateway_refund_id,
        "status": refund.status,
        "needs_manual_return": refund.needs_manual_return,
        "created_at": iso(refund.created_at),
        "updated_at": iso(refund.updated_at),
        "completed_at": iso(refund.completed_at) if refund.completed_at else None,
    }


def finding_payload(finding: ReconciliationFinding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "reconciliation_id": finding.reconciliation_id,
        "kind": str(finding.kind),
        "subject": finding.subject,
        "refund_no": finding.refund_no,
        "channel": str(finding.channel) if finding.channel else None,
        "detail": finding.detail,
    }


def event_id_of(key: str) -> str:
    """Derived from what the event is (a refund's sequence number, a finding's id), never
    random: the same change can only ever be the same event."""
    return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def envelope(event: OutgoingEvent) -> dict[str, Any]:
    """What a receiver gets: the event's identity, its order within its refund, and its data."""
    return {
        "id": event.event_id,
        "type": event.type,
        "created_at": iso(event.created_at),
        "refund_no": event.refund_no,
        "sequence": event.sequence,
        "data": event.payload,
    }


def woken(session: AsyncSession) -> set[int]:
    found: set[int] = session.info.get(WOKEN, set())
    return found


def wake_later(session: AsyncSession, endpoint_ids: Iterable[int]) -> None:
    """Remember endpoints to wake once this transaction commits."""
    ids = set(endpoint_ids)
    if ids:
        session.info.setdefault(WOKEN, set()).update(ids)


def refund_event(refund: RefundRecord, event_type: EventType) -> dict[str, Any]:
    """The bind values of `event_statement` for a change of a refund: `refund` as the change
    left it, its `event_sequence` already the next one (read under the row lock the change
    holds and written with it; `(refund_no, sequence)` is unique)."""
    key = f"{refund.refund_no}:{refund.event_sequence}"
    return _event(
        event_id_of(key),
        event_type,
        refund.refund_no,
        refund.event_sequence,
        {"refund": refund_payload(refund)},
    )


def _event(
    event_id: str,
    event_type: EventType,
    refund_no: str | None,
    sequence: int | None,
    payload: dict[str, Any],
) -> dict[str, Any]:
    return {
        "outbox_event_id": event_id,
        "outbox_type": event_type.value,
        "outbox_refund_no": refund_no,
        "outbox_sequence": sequence,
        "outbox_payload": payload,
        "outbox_created_at": datetime.now(UTC),
        # A refund's deliveries to an endpoint go out in sequence: one lane per refund.
        "outbox_lane": refund_no or event_id,
    }


_events = table(OutgoingEvent)
_deliveries = table(EventDelivery)
_endpoints = table(WebhookEndpoint)


def event_statement(writes: Sequence[CTE] = ()) -> Any:
    """One statement: `writes` (the change the event reports), the `outgoing_events` row, and one
    pending delivery per enabled endpoint subscribed to its type; it returns those endpoints.
    Values are bound by name (`refund_event`); built once per caller's shape."""
    event = (
        insert(_events)
        .values(
            event_id=bindparam("outbox_event_id", type_=String),
            type=bindparam("outbox_type", type_=String),
            refund_no=bindparam("outbox_refund_no", type_=String),
            sequence=bindparam("outbox_sequence", type_=Integer),
            payload=bindparam("outbox_payload", type_=JSONB),
            created_at=bindparam("outbox_created_at", type_=DateTime(timezone=True)),
        )
        .returning(_events.c.id)
        .cte("event")
    )
    subscribed = or_(
        _endpoints.c.event_types.has_key(bindparam("outbox_type", type_=String)),  # JSONB `?`
        _endpoints.c.event_types.has_key(ALL_TYPES),
    )
    rows = (
        select(
            event.c.id,
            _endpoints.c.id,
            bindparam("outbox_lane", type_=String),
            literal(DeliveryState.PENDING.value, String),
            literal(0, Integer),
        )
        .select_from(event.join(_endpoints, true()))  # each subscribed endpoint gets one
        .where(_endpoints.c.enabled.is_(True), subscribed)
    )
    stmt = (
        insert(_deliveries)
        .from_select(["event_id", "endpoint_id", "lane", "state", "attempts"], rows)
        .returning(_deliveries.c.endpoint_id)
    )
    return stmt.add_cte(*writes) if writes else stmt


_EVENT_ALONE = event_statement()


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_finding_event(self, finding: ReconciliationFinding) -> None:
        values = _event(
            event_id_of(f"finding:{finding.id}"),
            EventType.RECONCILIATION_FINDING,
            finding.refund_no,
            None,
            {"finding": finding_payload(finding)},
        )
        result = await self.session.execute(_EVENT_ALONE, values)
        wake_later(self.session, result.scalars().all())

    # ---- what the delivery workflows read and write ----------------------------------------

    async def lane_heads(
        self, endpoint_id: int, busy: Collection[str], limit: int
    ) -> list[tuple[int, str]]:
        """(delivery id, lane) of the first pending delivery of each lane not in flight: a
        refund's next event goes out only once the one before it is settled."""
        first = (
            select(EventDelivery.id, EventDelivery.lane)
            .join(OutgoingEvent, OutgoingEvent.id == EventDelivery.event_id)
            .where(
                EventDelivery.endpoint_id == endpoint_id,
                EventDelivery.state == DeliveryState.PENDING.value,
            )
            .order_by(EventDelivery.lane, OutgoingEvent.sequence, OutgoingEvent.id)
            .ext(distinct_on(EventDelivery.lane))
        ).subquery()
        stmt = select(first.c.id, first.c.lane).order_by(first.c.id).limit(limit)
        if busy:
            stmt = stmt.where(first.c.lane.not_in(list(busy)))
        return [(int(i), str(lane)) for i, lane in (await self.session.execute(stmt)).all()]

    async def target(self, delivery_id: int) -> DeliveryTarget | None:
        stmt = (
            select(EventDelivery, OutgoingEvent, WebhookEndpoint)
            .join(OutgoingEvent, OutgoingEvent.id == EventDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == EventDelivery.endpoint_id)
            .where(EventDelivery.id == delivery_id)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return DeliveryTarget(*row) if row is not None else None

    async def record_attempt(
        self, delivery_id: int, status_code: int | None, latency_ms: int, error: str | None
    ) -> None:
        self.session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                status_code=status_code,
                latency_ms=latency_ms,
                error=error,
            )
        )
        await self.session.execute(
            update(EventDelivery)
            .where(EventDelivery.id == delivery_id)
            .values(
                attempts=EventDelivery.attempts + 1,
                last_status_code=status_code,
                last_error=error,
                updated_at=func.now(),
            )
        )

    async def settle(self, delivery_id: int, endpoint_id: int, delivered: bool) -> None:
        """Delivered (the endpoint is healthy again) or failed for good (it is failing)."""
        state = DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
        await self.session.execute(
            update(EventDelivery)
            .where(EventDelivery.id == delivery_id)
            .values(
                state=state.value,
                delivered_at=func.now() if delivered else None,
                updated_at=func.now(),
            )
        )
        health = (
            {"failing": False, "failing_since": None}
            if delivered
            else {
                "failing": True,
                "failing_since": func.coalesce(WebhookEndpoint.failing_since, func.now()),
            }
        )
        await self.session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(**health)
        )

    # ---- what ops read and redo ---------------------------------------------------------------

    async def page(
        self,
        *,
        refund_no: str | None,
        event_type: str | None,
        delivery_state: str | None,
        after_id: int | None,
        limit: int,
    ) -> Sequence[OutgoingEvent]:
        stmt = (
            select(OutgoingEvent)
            .options(selectinload(OutgoingEvent.deliveries))
            .order_by(OutgoingEvent.id)
            .limit(limit)
        )
        if refund_no:
            stmt = stmt.where(OutgoingEvent.refund_no == refund_no)
        if event_type:
            stmt = stmt.where(OutgoingEvent.type == event_type)
        if delivery_state:
            stmt = stmt.where(
                exists().where(
                    EventDelivery.event_id == OutgoingEvent.id,
                    EventDelivery.state == delivery_state,
                )
            )
        if after_id is not None:
            stmt = stmt.where(OutgoingEvent.id > after_id)
        return (await self.session.scalars(stmt)).all()

    async def find(self, event_id: str) -> OutgoingEvent | None:
        stmt = (
            select(OutgoingEvent)
            .where(OutgoingEvent.event_id == event_id)
            .options(selectinload(OutgoingEvent.deliveries))
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def attempts(self, delivery_ids: Collection[int]) -> Sequence[DeliveryAttempt]:
        if not delivery_ids:
            return []
        stmt = (
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(list(delivery_ids)))
            .order_by(DeliveryAttempt.id)
        )
        return (await self.session.scalars(stmt)).all()

    async def redeliver(
        self,
        *,
        event_id: str | None = None,
        since: datetime | None = None,
        endpoint_id: int | None = None,
    ) -> int:
        """Queue deliveries again (pending, tries kept on record); wakes their endpoints."""
        events = select(OutgoingEvent.id)
        if event_id is not None:
            events = events.where(OutgoingEvent.event_id == event_id)
        if since is not None:
            events = events.where(OutgoingEvent.created_at >= since)
        conditions: list[ColumnElement[bool]] = [EventDelivery.event_id.in_(events)]
        if endpoint_id is not None:
            conditions.append(EventDelivery.endpoint_id == endpoint_id)
        stmt = (
            update(EventDelivery)
            .where(and_(*conditions))
            .values(state=DeliveryState.PENDING.value, updated_at=func.now())
            .returning(EventDelivery.endpoint_id)
        )
        endpoints = list((await self.session.execute(stmt)).scalars().all())
        wake_later(self.session, endpoints)
        return len(endpoints)

    async def counts(self) -> tuple[int, dict[DeliveryState, int]]:
        """Failing endpoints, and deliveries per state: the scrape-time gauges."""
        failing = select(func.count()).where(WebhookEndpoint.failing.is_(True))
        n_failing = int((await self.session.execute(failing)).scalar_one())
        by_state = select(EventDelivery.state, func.count()).group_by(EventDelivery.state)
        found = {s: int(n) for s, n in (await self.session.execute(by_state)).all()}
        return n_failing, {state: found.get(state.value, 0) for state in DeliveryState}


@dataclass(frozen=True)
class FailingEndpoint:
    """A failing endpoint as ops see it: how many of its deliveries ran out of tries, and how
    the last of them failed."""

    endpoint: WebhookEndpoint
    failed_deliveries: int
    last_error: str | None
    last_status_code: int | None
    last_failed_at: datetime | None


@dataclass(frozen=True)
class DeliveryTarget:
    delivery: EventDelivery
    event: OutgoingEvent
    endpoint: WebhookEndpoint


class WebhookEndpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, endpoint_id: int) -> WebhookEndpoint | None:
        return await self.session.get(WebhookEndpoint, endpoint_id)

    async def all(self) -> Sequence[WebhookEndpoint]:
        stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
        return (await self.session.scalars(stmt)).all()

    async def failing(self) -> list[FailingEndpoint]:
        """Failing endpoints, longest failing first, with their failed deliveries counted and
        the last error of the one that failed last."""
        failed = EventDelivery.state == DeliveryState.FAILED.value
        counts = (
            select(EventDelivery.endpoint_id, func.count().label("n"))
            .where(failed)
            .group_by(EventDelivery.endpoint_id)
            .subquery()
        )
        last = (
            select(
                EventDelivery.endpoint_id,
                EventDelivery.last_error,
                EventDelivery.last_status_code,
                EventDelivery.updated_at,
            )
            .where(failed)
            .order_by(
                EventDelivery.endpoint_id, EventDelivery.updated_at.desc(), EventDelivery.id.desc()
            )
            .ext(distinct_on(EventDelivery.endpoint_id))
            .subquery()
        )
        stmt = (
            select(
                WebhookEndpoint,
                func.coalesce(counts.c.n, 0),
                last.c.last_error,
                last.c.last_status_code,
                last.c.updated_at,
            )
            .outerjoin(counts, counts.c.endpoint_id == WebhookEndpoint.id)
            .outerjoin(last, last.c.endpoint_id == WebhookEndpoint.id)
            .where(WebhookEndpoint.failing.is_(True))
            .order_by(WebhookEndpoint.failing_since, WebhookEndpoint.id)
        )
        rows = (await self.session.execute(stmt)).all()
        return [FailingEndpoint(e, int(n), error, code, at) for e, n, error, code, at in rows]

    async def enabled_ids(self) -> list[int]:
        stmt = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
        return [int(i) for i in (await self.session.execute(stmt)).scalars().all()]

    async def get(self, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
        endpoint = await self.session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
        if endpoint is None:
            raise WebhookEndpointNotFound(f"webhook endpoint {endpoint_id} not found")
        return endpoint

    async def create(self, url: str, event_types: list[str], enabled: bool) -> WebhookEndpoint:
        endpoint = WebhookEndpoint(
            url=url, event_types=event_types, enabled=enabled, secret=new_secret(), failing=False
        )
        self.session.add(endpoint)
        await self.session.flush()
        await self.session.refresh(endpoint)
        return endpoint

    async def update(self, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            setattr(endpoint, name, value)
        endpoint.updated_at = datetime.now(UTC)
        await self.session.flush()

    async def rotate(self, endpoint: WebhookEndpoint, overlap: timedelta) -> None:
        """A new secret; the old one still signs for `overlap` (both headers go out)."""
        now = datetime.now(UTC)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_valid_until = now + overlap
        endpoint.secret = new_secret()
        endpoint.updated_at = now
        await self.session.flush()

    async def delete(self, endpoint: WebhookEndpoint) -> None:
        await self.session.delete(endpoint)
        await self.session.flush()
