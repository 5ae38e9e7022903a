"""A Stripe endpoint subscribed as the README says (`SUBSCRIBED_EVENTS`), through the real
stack: a happy refund costs one webhook, a failure two, and each outcome still reaches the
refund's workflow by webhook, not by the poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest_asyncio
from sqlalchemy import select

from refunds.db.models import GatewayNotificationRow
from refunds.domain.notifications import NotificationOutcome as Outcome
from refunds.gateways.stripe_gateway import SUBSCRIBED_EVENTS
from tests.e2e.support import Sessions, api_with, approved, timeline
from tests.factories import Shop, events, sandbox

LONG = timedelta(minutes=10)


@pytest_asyncio.fixture
async def subscribed(shop: Shop) -> AsyncIterator[Shop]:
    """The stack's Stripe sandbox sends only the subscribed events, and the shop's refunds go
    through an API whose refunds first poll after 10 minutes (the outcome deadline's 5 minutes
    come first): whatever moves them within a test is a webhook."""
    url = shop.stack.stripe_url
    await subscribe(url, list(SUBSCRIBED_EVENTS))
    try:
        async with api_with(
            shop, outcome_poll_interval=LONG, outcome_poll_max_interval=LONG
        ) as http:
            yield replace(shop, http=http)
    finally:
        await subscribe(url, ["*"])  # the other tests count every event


async def subscribe(stripe_url: str, names: list[str]) -> None:
    body = {"enabled_events": names}
    answer = await sandbox(stripe_url, "POST", "/_sandbox/webhook_events", json=body)
    assert answer == {"enabled_events": sorted(names)}


async def sandbox_events(shop: Shop, refund_no: str, count: int) -> list[dict[str, Any]]:
    """The sandbox's `count` events of the refund, once each subscribed one was answered 200
    (the API answers after its transaction committed)."""
    records: list[dict[str, Any]] = []
    for _ in range(300):
        body = await sandbox(
            shop.stack.stripe_url, "GET", "/_sandbox/events", params={"refund_no": refund_no}
        )
        records = list(body["data"])
        sent = [r for r in records if r["subscribed"]]
        if len(records) >= count and all(_answered(r) for r in sent):
            return records
        await asyncio.sleep(0.1)
    raise AssertionError(f"{refund_no}: events not all delivered: {records}")


def _answered(record: dict[str, Any]) -> bool:
    return any(d["status_code"] == 200 for d in record["deliveries"])


def delivered(records: list[dict[str, Any]]) -> dict[str, str]:
    """Event id -> type of the events the sandbox sent (each once, answered 200)."""
    sent = {r["event"]["id"]: r["event"]["type"] for r in records if r["deliveries"]}
    assert all(len(r["deliveries"]) == 1 and _answered(r) for r in records if r["deliveries"])
    return sent


async def notification_rows(sessionmaker: Sessions, refund_no: str) -> list[GatewayNotificationRow]:
    async with sessionmaker() as session:
        stmt = select(GatewayNotificationRow).where(
            GatewayNotificationRow.gateway == "stripe",
            GatewayNotificationRow.refund_no == refund_no,
        )
        return list((await session.scalars(stmt)).all())


def assert_moved_by_webhook(refund: dict[str, Any], event: str) -> None:
    [moved] = timeline(refund, event)
    assert moved["detail"]["via"] == "webhook", moved
    assert "gateway_polled" not in events(refund)


async def test_a_happy_refund_is_one_webhook_and_succeeds_on_it(
    subscribed: Shop, sessionmaker: Sessions
) -> None:
    shop = subscribed
    order, refund_no = await approved(shop, 4100)
    done = await shop.wait_status(refund_no, "succeeded")
    records = await sandbox_events(shop, refund_no, count=4)
    # Stripe's four events are all created; only the subscribed one is sent.
    assert [(r["event"]["type"], r["subscribed"]) for r in records] == [
        ("refund.created", False),
        ("charge.refunded", False),
        ("refund.updated", True),
        ("charge.refund.updated", False),
    ]
    assert [r["event"]["pending_webhooks"] for r in records] == [0, 0, 1, 0]
    sent = delivered(records)
    assert list(sent.values()) == ["refund.updated"]
    rows = await notification_rows(sessionmaker, refund_no)
    assert [(r.notification_id, r.event_type, r.status, r.outcome) for r in rows] == [
        (*sent, "refund.updated", "succeeded", Outcome.SIGNALLED)
    ]
    assert_moved_by_webhook(done, "succeeded")
    after = await shop.get_order(order["order_no"])
    assert (after["status"], after["refunded_amount"], after["refundable_amount"]) == (
        "refunded",
        4100,
        0,
    )


async def test_a_failure_arrives_by_refund_updated_and_refund_failed_only(
    subscribed: Shop, sessionmaker: Sessions
) -> None:
    shop = subscribed
    order, refund_no = await approved(shop, 4200, "fail", failure_reason="lost_or_stolen_card")
    failed = await shop.wait_status(refund_no, "failed")
    records = await sandbox_events(shop, refund_no, count=5)
    sent = delivered(records)
    assert sorted(sent.values()) == ["refund.failed", "refund.updated"]
    rows = await notification_rows(sessionmaker, refund_no)
    assert sorted(r.notification_id for r in rows) == sorted(sent)
    assert {r.status for r in rows} == {"failed"}
    # The two are twins: the first weighed is news, the other a repeat.
    assert sorted(r.outcome for r in rows) == sorted([Outcome.SIGNALLED, Outcome.DUPLICATE])
    assert_moved_by_webhook(failed, "gateway_failed")
    assert timeline(failed, "gateway_failed")[0]["detail"]["failure_reason"] == (
        "lost_or_stolen_card"
    )
    after = await shop.get_order(order["order_no"])
    assert (after["status"], after["refunded_amount"], after["refundable_amount"]) == (
        "paid",
        0,
        4200,
    )


async def test_a_late_failure_reopens_the_refund_by_its_subscribed_events(
    subscribed: Shop, sessionmaker: Sessions
) -> None:
    shop = subscribed
    _, refund_no = await approved(shop, 4300, "fail_after_success", after=1)
    abnormal = await shop.wait_status(refund_no, "abnormal")
    assert_moved_by_webhook(abnormal, "succeeded")
    [reopened] = timeline(abnormal, "gateway_failed_after_success")
    records = await sandbox_events(shop, refund_no, count=7)
    sent = delivered(records)
    assert sorted(sent.values()) == ["refund.failed", "refund.updated", "refund.updated"]
    assert reopened["detail"]["event_id"] in sent
    rows = await notification_rows(sessionmaker, refund_no)
    assert sorted(r.notification_id for r in rows) == sorted(sent)
    news = {r.status: r.outcome for r in rows if r.outcome != Outcome.DUPLICATE}
    assert news["succeeded"] == Outcome.SIGNALLED
    assert news["failed"] in {Outcome.SIGNALLED, Outcome.REOPENED}
    assert [r.status for r in rows if r.outcome == Outcome.DUPLICATE] == ["failed"]
