"""Outgoing events and their deliveries (issue 13): what each shop was told, and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.cursors import decode_cursor, encode_cursor
from api.deps import PrincipalDep, SessionDep, SettingsDep, TemporalDep
from api.errors import documented
from api.params import Cursor, RefundNoFilter
from api.schemas import (
    DeliveryAttemptOut,
    DeliveryOut,
    EventOut,
    EventPage,
    PathKey,
    RedeliverOut,
)
from refunds.db.models import OutgoingEvent
from refunds.db.outbox import OutboxRepository, woken
from refunds.domain.errors import EventNotFound
from refunds.domain.outgoing import DeliveryState, EventType
from refunds.runtime.webhook_relay import wake_quietly

router = APIRouter(prefix="/v1/events", tags=["webhooks"])

READERS = ("admin", "ops")


def event_out(event: OutgoingEvent) -> EventOut:
    return EventOut(
        id=event.event_id,
        type=EventType(event.type),
        refund_no=event.refund_no,
        sequence=event.sequence,
        created_at=event.created_at,
        data=event.payload,
        deliveries=[DeliveryOut.model_validate(d) for d in event.deliveries],
    )


@router.get("", response_model=EventPage, responses=documented(401, 403, 422))
async def list_events(
    principal: PrincipalDep,
    session: SessionDep,
    refund_no: RefundNoFilter = None,
    type_: Annotated[EventType | None, Query(alias="type")] = None,
    delivery_state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> EventPage:
    """Events oldest first, by refund, type, or the state of a delivery, with a cursor."""
    principal.require(*READERS)
    rows = await OutboxRepository(session).page(
        refund_no=refund_no,
        event_type=type_,
        delivery_state=delivery_state,
        after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    page = list(rows[:limit])
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return EventPage(items=[event_out(e) for e in page], next_cursor=next_cursor)


@router.get("/{event_id}", response_model=EventOut, responses=documented(401, 403, 404, 422))
async def get_event(event_id: PathKey, principal: PrincipalDep, session: SessionDep) -> EventOut:
    """One event with each delivery and every try (status code, latency, error)."""
    principal.require(*READERS)
    outbox = OutboxRepository(session)
    event = await outbox.find(event_id)
    if event is None:
        raise EventNotFound(f"event {event_id} not found")
    out = event_out(event)
    attempts = await outbox.attempts([d.id for d in out.deliveries])
    for delivery in out.deliveries:
        delivery.tries = [
            DeliveryAttemptOut.model_validate(a) for a in attempts if a.delivery_id == delivery.id
        ]
    return out


@router.post(
    "/{event_id}/redeliver", response_model=RedeliverOut, responses=documented(401, 403, 404, 422)
)
async def redeliver_event(
    event_id: PathKey,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalDep,
    endpoint_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> RedeliverOut:
    """Deliver the event again (to one endpoint, or to every one it went to)."""
    principal.require(*READERS)
    outbox = OutboxRepository(session)
    if await outbox.find(event_id) is None:
        raise EventNotFound(f"event {event_id} not found")
    queued = await outbox.redeliver(event_id=event_id, endpoint_id=endpoint_id)
    await session.commit()
    await wake_quietly(client, settings, woken(session))
    return RedeliverOut(queued=queued)
