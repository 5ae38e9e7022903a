"""The delivery activity checks its target again at delivery time (DNS may have changed since
the endpoint was saved) and records the refused try (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhooks import TARGET_REFUSED, WebhookActivities
from refunds.db.models import DeliveryAttempt, EventDelivery, OutgoingEvent, WebhookEndpoint
from refunds.db.outbox import event_id_of
from refunds.domain.messages import DeliveryGaveUp, DeliveryTry, LaneQuery
from tests.e2e.webhook_receiver import running_receiver
from tests.factories import uid


async def test_a_private_target_is_refused_at_delivery_time_and_the_try_recorded(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        # Saved while private targets were allowed (or before its DNS changed).
        endpoint = WebhookEndpoint(url="http://127.0.0.1:9/hook", event_types=["*"], secret="s")
        event = OutgoingEvent(
            event_id=event_id_of(uid("t")), type="refund.created", refund_no=None, payload={}
        )
        session.add_all([endpoint, event])
        await session.flush()
        delivery = EventDelivery(event_id=event.id, endpoint_id=endpoint.id, lane=event.event_id)
        session.add(delivery)
    activities = WebhookActivities(sessionmaker, allow_private_targets=False)
    env = ActivityEnvironment()
    try:
        heads = await env.run(activities.pending_lanes, LaneQuery(endpoint.id, [], 8))
        assert [h.delivery_id for h in heads.heads] == [delivery.id]
        with pytest.raises(ApplicationError) as refused:
            await env.run(activities.deliver_event, DeliveryTry(delivery.id, 1.0))
        assert refused.value.type == TARGET_REFUSED and refused.value.non_retryable
        await env.run(activities.give_up_delivery, DeliveryGaveUp(delivery.id, "refused"))
        async with sessionmaker() as session:
            (attempt,) = (
                await session.scalars(
                    select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
                )
            ).all()
            assert attempt.status_code is None and "private" in (attempt.error or "")
            row = await session.get(EventDelivery, delivery.id)
            assert row is not None and row.state == "failed"
            failing = await session.get(WebhookEndpoint, endpoint.id)
            assert failing is not None and failing.failing and failing.failing_since is not None
    finally:
        async with sessionmaker.begin() as session:
            await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
            await session.execute(delete(OutgoingEvent).where(OutgoingEvent.id == event.id))


@asynccontextmanager
async def one_delivery(
    sessionmaker: async_sessionmaker[AsyncSession], url: str
) -> AsyncIterator[int]:
    """A pending delivery of one event to an endpoint at `url`, removed afterwards."""
    async with sessionmaker.begin() as session:
        endpoint = WebhookEndpoint(url=url, event_types=["*"], secret="s")
        event = OutgoingEvent(
            event_id=event_id_of(uid("t")), type="refund.created", refund_no=None, payload={}
        )
        session.add_all([endpoint, event])
        await session.flush()
        delivery = EventDelivery(event_id=event.id, endpoint_id=endpoint.id, lane=event.event_id)
        session.add(delivery)
    try:
        yield delivery.id
    finally:
        async with sessionmaker.begin() as session:
            await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
            await session.execute(delete(OutgoingEvent).where(OutgoingEvent.id == event.id))


async def test_a_name_resolving_to_a_private_address_is_refused_and_never_connected(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with running_receiver() as receiver:
        named = receiver.url.replace("127.0.0.1", "localhost")
        async with one_delivery(sessionmaker, named) as delivery_id:
            activities = WebhookActivities(sessionmaker, allow_private_targets=False)
            with pytest.raises(ApplicationError) as refused:
                await ActivityEnvironment().run(
                    activities.deliver_event, DeliveryTry(delivery_id, 5.0)
                )
            assert refused.value.type == TARGET_REFUSED and refused.value.non_retryable
            assert "localhost" in str(refused.value) and "127.0.0.1" in str(refused.value)
            async with sessionmaker() as session:
                (attempt,) = (
                    await session.scalars(
                        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
                    )
                ).all()
            assert attempt.status_code is None and "private" in (attempt.error or "")
        assert receiver.arrivals == []


async def test_a_delivery_connects_to_the_vetted_address_under_its_hostname(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with running_receiver(secrets=["s"]) as receiver:
        named = receiver.url.replace("127.0.0.1", "localhost")
        port = named.split(":")[2].split("/")[0]
        async with one_delivery(sessionmaker, named) as delivery_id:
            activities = WebhookActivities(sessionmaker, allow_private_targets=True)
            done = await ActivityEnvironment().run(
                activities.deliver_event, DeliveryTry(delivery_id, 5.0)
            )
            assert done.status_code == 200
        [arrival] = receiver.arrivals
        assert arrival.host == f"localhost:{port}" and arrival.verified_with == ["s"]
