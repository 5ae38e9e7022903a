"""The Stripe sandbox's webhook subscription (Stripe's `enabled_events`): unsubscribed events are
created and listed, never sent; the subscription is refused when it names an unknown event."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import stripe

from refunds.sandboxes.stripe_sandbox.config import EVENT_TYPES, webhook_subscription
from tests.sandboxes.stripe_support import StripeStack, new_refund_no, running_sandbox, types

SUCCESS_EVENTS = ["refund.created", "charge.refunded", "refund.updated", "charge.refund.updated"]
SUBSCRIBED_EVENTS = ("refund.updated", "refund.failed")  # the product's, as a shop sets it


@pytest.fixture(scope="module")
def subscribed() -> Iterator[StripeStack]:
    """A sandbox of its own: the session's one sends every event to other tests."""
    with running_sandbox(webhook_events=frozenset(SUBSCRIBED_EVENTS)) as stack:
        yield stack


def refund(stack: StripeStack, pi: str, refund_no: str) -> stripe.Refund:
    return stack.client().v1.refunds.create(
        params={"payment_intent": pi, "metadata": {"refund_no": refund_no}},
        options={"idempotency_key": refund_no},
    )


def settled(stack: StripeStack, refund_no: str, count: int) -> list[dict]:
    """The refund's event records, once there are `count` and the subscribed ones were sent."""
    deadline = time.monotonic() + 5
    while True:
        records = stack.events(refund_no)
        if len(records) >= count and all(r["deliveries"] for r in records if r["subscribed"]):
            return records
        assert time.monotonic() < deadline, records
        time.sleep(0.02)


def test_only_subscribed_events_are_sent_and_every_event_is_still_listed(subscribed: StripeStack):
    pi, refund_no = subscribed.pay(1000), new_refund_no()
    refund(subscribed, pi, refund_no)
    records = settled(subscribed, refund_no, count=4)
    assert [r["event"]["type"] for r in records] == SUCCESS_EVENTS
    assert [r["subscribed"] for r in records] == [False, False, True, False]
    assert [len(r["deliveries"]) for r in records] == [0, 0, 1, 0]
    assert [r["event"]["pending_webhooks"] for r in records] == [0, 0, 1, 0]
    time.sleep(0.2)  # nothing else is on its way
    [sent] = subscribed.recorder.for_refund(refund_no)
    assert sent.event["type"] == "refund.updated"
    assert sent.event["data"]["object"]["status"] == "succeeded"
    # An unsent event is still Stripe's to read, as at GET /v1/events/{id}.
    created = subscribed.client().v1.events.retrieve(records[0]["event"]["id"])
    assert (created.type, created.pending_webhooks) == ("refund.created", 0)


def test_a_failure_sends_refund_updated_and_refund_failed_only(subscribed: StripeStack):
    pi, refund_no = subscribed.pay(1000), new_refund_no()
    subscribed.fault(refund_no=refund_no, action="fail", failure_reason="lost_or_stolen_card")
    refund(subscribed, pi, refund_no)
    records = settled(subscribed, refund_no, count=5)
    assert [(r["event"]["type"], r["subscribed"]) for r in records] == [
        ("refund.created", False),
        ("charge.refunded", False),
        ("refund.updated", True),
        ("charge.refund.updated", False),
        ("refund.failed", True),
    ]
    got = subscribed.recorder.wait_for(refund_no, lambda d: len(d) >= 2)
    assert types(got) == ["refund.updated", "refund.failed"]
    assert {d.event["data"]["object"]["status"] for d in got} == {"failed"}


def test_duplicate_fault_doubles_only_what_is_subscribed(subscribed: StripeStack):
    pi, refund_no = subscribed.pay(1000), new_refund_no()
    subscribed.fault(refund_no=refund_no, action="duplicate_webhook")
    refund(subscribed, pi, refund_no)
    got = subscribed.recorder.wait_for(refund_no, lambda d: len(d) >= 2)
    time.sleep(0.2)
    assert types(subscribed.recorder.for_refund(refund_no)) == types(got) == ["refund.updated"] * 2


def test_the_subscription_changes_at_runtime_and_refuses_unknown_events(
    subscribed: StripeStack,
):
    control = subscribed.control
    assert control.get("/_sandbox/webhook_events").json() == {
        "enabled_events": sorted(SUBSCRIBED_EVENTS)
    }
    refused = control.post("/_sandbox/webhook_events", json={"enabled_events": ["refund.update"]})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_events")
    try:
        everything = control.post("/_sandbox/webhook_events", json={"enabled_events": ["*"]})
        assert everything.json() == {"enabled_events": ["*"]}
        pi, refund_no = subscribed.pay(1000), new_refund_no()
        refund(subscribed, pi, refund_no)
        got = subscribed.recorder.wait_for(refund_no, lambda d: len(d) >= 4)
        assert types(got) == SUCCESS_EVENTS
    finally:
        body = {"enabled_events": list(SUBSCRIBED_EVENTS)}
        control.post("/_sandbox/webhook_events", json=body).raise_for_status()


def test_webhook_subscription_reads_names_and_star() -> None:
    assert webhook_subscription([" refund.updated", "refund.failed "]) == frozenset(
        SUBSCRIBED_EVENTS
    )
    assert webhook_subscription(["refund.updated", "*"]) is None
    assert set(SUBSCRIBED_EVENTS) <= EVENT_TYPES
    for bad in (["refund.succeeded"], [], [" "]):
        with pytest.raises(ValueError, match="unknown webhook events"):
            webhook_subscription(bad)
