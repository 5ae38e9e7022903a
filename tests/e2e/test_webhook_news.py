"""Only news reaches a refund's workflow (issue 11), through the real stack: Stripe's four events
per refund, duplicated, out of order or failing late, each costs the workflow a task only when it
tells the refund something new; every one is recorded with what was done with it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from refunds.db.models import GatewayNotificationRow, Refund
from refunds.domain.notifications import NotificationOutcome as Outcome
from refunds.runtime.payload_codec import EncryptionCodec, parse_payload_keys
from refunds.sandboxes.stripe_sandbox.webhooks import sign
from tests.e2e.support import Sessions, approved, stripe_refunds
from tests.factories import Shop, events, sandbox, uid, wait_event
from tests.stack import TEST_PAYLOAD_KEYS


def workflow_id(refund_no: str) -> str:
    return f"refund-{refund_no}"  # spelled out, as the Temporal UI shows it


# What a news notification can become: signalled to the open run, or, when the run has closed
# meanwhile (a poll settled the refund first), ignored, reopened or repaired.
NEWS = {Outcome.SIGNALLED, Outcome.IGNORED, Outcome.REOPENED, Outcome.REPAIRED, Outcome.RECORDED}


async def delivered_events(
    shop: Shop, refund_no: str, count: int, deliveries: int = 1
) -> list[dict[str, Any]]:
    """The Stripe sandbox's events for the refund, once there are `count` and each was answered
    `deliveries` times (the API answers after its transaction committed)."""
    records: list[dict[str, Any]] = []
    for _ in range(300):
        body = await sandbox(
            shop.stack.stripe_url, "GET", "/_sandbox/events", params={"refund_no": refund_no}
        )
        records = list(body["data"])
        answered = [[d for d in r["deliveries"] if d["status_code"] == 200] for r in records]
        if len(records) >= count and all(len(a) >= deliveries for a in answered):
            return records
        await asyncio.sleep(0.1)
    raise AssertionError(f"{refund_no}: events not all delivered: {records}")


async def rows_of(
    sessionmaker: Sessions, event_ids: list[str]
) -> dict[str, GatewayNotificationRow]:
    async with sessionmaker() as session:
        stmt = select(GatewayNotificationRow).where(
            GatewayNotificationRow.gateway == "stripe",
            GatewayNotificationRow.notification_id.in_(event_ids),
        )
        return {row.notification_id: row for row in (await session.scalars(stmt)).all()}


async def gateway_status(sessionmaker: Sessions, refund_no: str) -> str | None:
    async with sessionmaker() as session:
        stmt = select(Refund.gateway_status).where(Refund.refund_no == refund_no)
        return await session.scalar(stmt)


async def signalled_event_ids(temporal: Client, refund_no: str) -> list[str]:
    """The gateway event ids the refund's (latest) run was signalled with, one per signal."""
    history = await temporal.get_workflow_handle(workflow_id(refund_no)).fetch_history()
    signalled = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    codec = EncryptionCodec(parse_payload_keys(TEST_PAYLOAD_KEYS))  # payloads are sealed
    return [
        json.loads(codec.decrypt(s.input.payloads[0]).data)["event_id"]
        for s in signalled
        if s.signal_name == "gateway_notification"
    ]


def by_status(rows: dict[str, GatewayNotificationRow]) -> dict[str, Counter[str]]:
    """Per gateway status, how many of its notifications had each outcome."""
    found: dict[str, Counter[str]] = {}
    for row in rows.values():
        found.setdefault(str(row.status), Counter())[row.outcome] += 1
    return found


def assert_one_news_per_status(rows: dict[str, GatewayNotificationRow]) -> None:
    """Each status's events (Stripe sends two or three) are news once at most, the rest repeats."""
    for status, outcomes in by_status(rows).items():
        assert set(outcomes) <= NEWS | {Outcome.DUPLICATE}, (status, outcomes)
        assert sum(n for o, n in outcomes.items() if o in NEWS) <= 1, (status, outcomes)
        assert outcomes[Outcome.DUPLICATE] >= sum(outcomes.values()) - 1, (status, outcomes)


async def test_a_refund_is_signalled_once_per_news_and_repeats_are_recorded_duplicates(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order, refund_no = await approved(shop, 3100)
    done = await shop.wait_status(refund_no, "succeeded")
    sent = await delivered_events(shop, refund_no, count=4)
    assert [r["event"]["type"] for r in sent] == [
        "refund.created",
        "charge.refunded",
        "refund.updated",
        "charge.refund.updated",
    ]
    rows = await rows_of(sessionmaker, [r["event"]["id"] for r in sent])
    assert len(rows) == 4
    assert_one_news_per_status(rows)
    # Exactly as many signals as news signalled, and those signals carry these events.
    signalled = [event_id for event_id, row in rows.items() if row.outcome == Outcome.SIGNALLED]
    assert sorted(await signalled_event_ids(temporal, refund_no)) == sorted(signalled)
    # "Still processing" changes no workflow's course: recorded, never signalled; the success
    # is the one signal (none when a poll heard it first).
    assert {row.outcome for row in rows.values() if row.status == "processing"} <= {
        Outcome.RECORDED,
        Outcome.DUPLICATE,
    }
    assert len(signalled) <= 1
    assert await gateway_status(sessionmaker, refund_no) == "succeeded"
    # Every answer stays on the timeline, news or not.
    final = await shop.get_refund(refund_no)
    assert events(final).count("gateway_notification") == 4
    assert events(final).count("succeeded") == events(done).count("succeeded") == 1
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 3100


async def test_a_webhook_delivered_twice_is_recorded_once_and_signalled_at_most_once(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order, refund_no = await approved(shop, 3200, "duplicate_webhook")
    await shop.wait_status(refund_no, "succeeded")
    sent = await delivered_events(shop, refund_no, count=4, deliveries=2)
    rows = await rows_of(sessionmaker, [r["event"]["id"] for r in sent])
    assert len(rows) == 4  # one row per event id, whatever the deliveries
    assert_one_news_per_status(rows)
    signals = await signalled_event_ids(temporal, refund_no)
    assert len(signals) == len(set(signals)) <= 2
    assert sorted(signals) == sorted(
        i for i, row in rows.items() if row.outcome == Outcome.SIGNALLED
    )
    final = await shop.get_refund(refund_no)
    assert events(final).count("gateway_notification") == 4
    assert events(final).count("succeeded") == 1
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 3200


async def test_a_stale_pending_event_arriving_after_success_is_a_duplicate(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    # refund.created is held back until the refund succeeded: it arrives last.
    order, refund_no = await approved(shop, 3300, "out_of_order_webhooks")
    await shop.wait_status(refund_no, "succeeded")
    sent = await delivered_events(shop, refund_no, count=4)
    rows = await rows_of(sessionmaker, [r["event"]["id"] for r in sent])
    [created] = [r["event"]["id"] for r in sent if r["event"]["type"] == "refund.created"]
    created_row = rows.pop(created)
    assert (created_row.status, created_row.outcome) == ("processing", Outcome.DUPLICATE)
    assert_one_news_per_status(rows)
    assert created not in await signalled_event_ids(temporal, refund_no)
    assert await gateway_status(sessionmaker, refund_no) == "succeeded"
    assert (await shop.get_refund(refund_no))["status"] == "succeeded"
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (3300, "refunded")


async def test_a_late_failure_is_news_once_and_its_twin_events_are_duplicates(
    shop: Shop, sessionmaker: Sessions
) -> None:
    _, refund_no = await approved(
        shop, 3400, "fail_after_success", after=1, failure_reason="expired_or_canceled_card"
    )
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "gateway_failed_after_success" in events(abnormal)
    # refund.updated, charge.refund.updated and refund.failed say it failed: one reopens the
    # refund (or reaches its run, when it had not closed yet), the other two are repeats.
    sent = await delivered_events(shop, refund_no, count=7)
    failed = {
        row.notification_id: row
        for row in (await rows_of(sessionmaker, [r["event"]["id"] for r in sent])).values()
        if row.status == "failed"
    }
    outcomes = Counter(row.outcome for row in failed.values())
    assert sum(outcomes.values()) == 3
    assert outcomes[Outcome.DUPLICATE] == 2
    assert outcomes[Outcome.REOPENED] + outcomes[Outcome.SIGNALLED] == 1, outcomes
    assert await gateway_status(sessionmaker, refund_no) == "failed"


# --- events the sandbox would not send: made and signed here, as Stripe signs them -------------


async def post_event(shop: Shop, type_: str, obj: dict[str, Any]) -> str:
    """A signed Stripe event carrying `obj`; its id."""
    event_id = uid("evt")
    payload = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": type_,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    )
    secret = shop.stack.settings.stripe_webhook_secret
    assert secret is not None
    headers = {
        "Stripe-Signature": sign(payload, secret, int(time.time())),
        "Content-Type": "application/json",
    }
    response = await shop.http.post("/v1/webhooks/stripe", content=payload, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    return event_id


def refund_object(at_gateway: dict[str, Any], status: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": at_gateway["id"],
        "object": "refund",
        "amount": at_gateway["amount"],
        "payment_intent": at_gateway["payment_intent"],
        "currency": at_gateway["currency"],
        "status": status,
        "metadata": at_gateway["metadata"],
    } | changes


async def outcome(sessionmaker: Sessions, event_id: str) -> str:
    return (await rows_of(sessionmaker, [event_id]))[event_id].outcome


async def processing_at_the_gateway(
    shop: Shop, sessionmaker: Sessions, amount: int
) -> tuple[str, dict[str, Any]]:
    """A refund that the gateway keeps pending, once its two pending events were weighed."""
    _, refund_no = await approved(shop, amount, "pending_forever")
    await wait_event(shop, refund_no, "gateway_submitted")
    await delivered_events(shop, refund_no, count=2)
    [at_gateway] = await stripe_refunds(shop, refund_no)
    assert await gateway_status(sessionmaker, refund_no) == "processing"
    return refund_no, at_gateway


async def test_events_about_no_refund_of_ours_are_recorded_not_ours(
    shop: Shop, sessionmaker: Sessions
) -> None:
    stranger = {"id": uid("re"), "object": "refund", "amount": 100, "status": "succeeded"}
    foreign = await post_event(
        shop, "refund.updated", stranger | {"metadata": {"refund_no": uid("rf-elsewhere")}}
    )
    dashboard = await post_event(shop, "refund.updated", stranger | {"metadata": {}})
    other_kind = await post_event(shop, "payment_intent.succeeded", {"id": uid("pi")})
    for event_id in (foreign, dashboard, other_kind):
        assert await outcome(sessionmaker, event_id) == Outcome.NOT_OURS


async def test_a_gateway_refund_that_is_not_ours_is_always_news_and_not_our_status(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    refund_no, at_gateway = await processing_at_the_gateway(shop, sessionmaker, 3500)
    wrong = refund_object(at_gateway, "succeeded", amount=at_gateway["amount"] - 1)
    first = await post_event(shop, "refund.updated", wrong)
    assert await outcome(sessionmaker, first) == Outcome.SIGNALLED
    abnormal = await shop.wait_status(refund_no, "abnormal")
    assert "gateway_refund_mismatch" in events(abnormal)
    # Its status is not our refund's: not recorded, and the same word again is news again.
    assert await gateway_status(sessionmaker, refund_no) == "processing"
    again = await post_event(shop, "charge.refund.updated", wrong)
    assert await outcome(sessionmaker, again) == Outcome.SIGNALLED
    assert {first, again} <= set(await signalled_event_ids(temporal, refund_no))


async def test_a_gateway_refund_in_another_currency_is_not_ours_even_with_our_amount(
    shop: Shop, sessionmaker: Sessions
) -> None:
    refund_no, at_gateway = await processing_at_the_gateway(shop, sessionmaker, 3700)
    # Our amount and payment, in our currency (Stripe writes it in lower case): a repeat.
    same = await post_event(shop, "refund.updated", refund_object(at_gateway, "pending"))
    assert await outcome(sessionmaker, same) == Outcome.DUPLICATE
    # In yen, the same digits are another refund: always news, never recorded as ours.
    yen = refund_object(at_gateway, "pending", currency="jpy")
    assert at_gateway["currency"] == "usd"
    other = await post_event(shop, "refund.updated", yen)
    assert await outcome(sessionmaker, other) == Outcome.SIGNALLED
    assert await gateway_status(sessionmaker, refund_no) == "processing"


async def test_a_repeat_for_a_refund_whose_run_was_closed_waits_for_reconciliation_and_news_repairs_it(  # noqa: E501
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    refund_no, at_gateway = await processing_at_the_gateway(shop, sessionmaker, 3600)
    handle = temporal.get_workflow_handle(workflow_id(refund_no))
    await handle.terminate("by hand, from the UI")

    repeat = await post_event(shop, "refund.updated", refund_object(at_gateway, "pending"))
    assert await outcome(sessionmaker, repeat) == Outcome.DUPLICATE
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    assert (await shop.get_refund(refund_no))["status"] == "processing"

    # News finds the run closed under an unfinished refund: a fresh run takes it (§7a).
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed")
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert events(done).count("repaired") == 1
    sent = await delivered_events(shop, refund_no, count=4)
    rows = await rows_of(sessionmaker, [r["event"]["id"] for r in sent[2:]])
    assert sorted(row.outcome for row in rows.values()) == [Outcome.DUPLICATE, Outcome.REPAIRED]
