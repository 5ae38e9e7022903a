"""The Stripe sandbox, driven by the official `stripe` client over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from stripe.params import EventListParams

from tests.sandboxes.stripe_support import (
    DAY,
    REFUND_DELAY,
    StripeStack,
    WebhookRecorder,
    new_refund_no,
    past_day,
    running_sandbox,
    types,
)

# As at Stripe: charge.refunded when the refund is created (the charge counts it from then on).
SUCCESS_EVENTS = ["refund.created", "charge.refunded", "refund.updated", "charge.refund.updated"]
FAILURE_EVENTS = [*SUCCESS_EVENTS[:2], "refund.updated", "charge.refund.updated", "refund.failed"]


def refund(
    stack: StripeStack, pi: str, refund_no: str, amount: int | None = None, key: str | None = None
) -> stripe.Refund:
    params: dict[str, object] = {"payment_intent": pi, "metadata": {"refund_no": refund_no}}
    if amount is not None:
        params["amount"] = amount
    return stack.client().v1.refunds.create(
        params=params,  # type: ignore[arg-type]
        options={"idempotency_key": key or refund_no},
    )


def wait_status(stack: StripeStack, refund_id: str, status: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while stack.client().v1.refunds.retrieve(refund_id).status != status:
        assert time.monotonic() < deadline, f"{refund_id} never became {status}"
        time.sleep(0.02)


def test_pm_card_visa_payment_confirms_to_succeeded_with_a_charge(stripe_stack: StripeStack):
    intent = stripe_stack.client().v1.payment_intents.create(
        params={
            "amount": 1999,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert intent.status == "succeeded" and intent.amount_received == 1999
    charge = stripe_stack.client().v1.charges.retrieve(intent.latest_charge)  # type: ignore[arg-type]
    assert (charge.amount, charge.amount_refunded, charge.paid) == (1999, 0, True)
    assert stripe_stack.client().v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_declined_test_card_is_a_402_card_error(stripe_stack: StripeStack):
    with pytest.raises(stripe.CardError) as err:
        stripe_stack.pay(500, payment_method="pm_card_chargeDeclined")
    assert err.value.http_status == 402 and err.value.code == "card_declined"


def test_unknown_payment_method_is_a_402_card_error(stripe_stack: StripeStack):
    with pytest.raises(stripe.CardError):
        stripe_stack.pay(500, payment_method="pm_made_up")


def test_wrong_api_key_is_401(stripe_stack: StripeStack):
    client = stripe.StripeClient("sk_test_wrong", base_addresses={"api": stripe_stack.url})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.refunds.list()


def test_refund_is_pending_then_succeeds_after_the_delay(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    created = refund(stripe_stack, pi, refund_no, amount=400)
    assert (created.status, created.amount, created.currency) == ("pending", 400, "usd")
    assert created.payment_intent == pi
    assert created.metadata is not None and created.metadata["refund_no"] == refund_no
    wait_status(stripe_stack, created.id, "succeeded", timeout=REFUND_DELAY + 2)
    charge = stripe_stack.client().v1.charges.retrieve(created.charge)  # type: ignore[arg-type]
    assert charge.amount_refunded == 400 and charge.refunded is False


def test_webhooks_arrive_signed_in_order_and_verify_with_stripe(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    refund(stripe_stack, pi, refund_no)
    got = stripe_stack.recorder.wait_for(refund_no, lambda d: len(d) >= 4)
    assert types(got) == SUCCESS_EVENTS
    for delivery in got:
        event = stripe.Webhook.construct_event(
            delivery.body, delivery.headers["stripe-signature"], stripe_stack.webhook_secret
        )
        assert event.object == "event" and event.livemode is False and event.id.startswith("evt_")
    charge = got[1].event["data"]["object"]
    assert charge["object"] == "charge" and charge["amount_refunded"] == 1000
    assert charge["refunds"]["data"][0]["status"] == "pending"
    assert got[-1].event["data"]["object"]["status"] == "succeeded"


def test_same_idempotency_key_and_params_replays_the_same_refund(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    first = refund(stripe_stack, pi, refund_no, amount=300)
    second = refund(stripe_stack, pi, refund_no, amount=300)
    refunds, creates = stripe_stack.refunds(refund_no)
    assert first.id == second.id and len(refunds) == 1 and creates == 2


def test_same_idempotency_key_with_other_params_is_idempotency_error(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    refund(stripe_stack, pi, refund_no, amount=300)
    with pytest.raises(stripe.IdempotencyError):
        refund(stripe_stack, pi, refund_no, amount=301)
    assert len(stripe_stack.refunds(refund_no)[0]) == 1


def test_expired_idempotency_keys_no_longer_replay(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    first = refund(stripe_stack, pi, refund_no, amount=300)
    assert stripe_stack.control.delete("/_sandbox/idempotency").json()["expired"] >= 1
    second = refund(stripe_stack, pi, refund_no, amount=300)
    assert first.id != second.id and len(stripe_stack.refunds(refund_no)[0]) == 2


def test_seeding_control_endpoint_makes_a_paid_payment(stripe_stack: StripeStack):
    body = {"amount": 2500, "currency": "usd", "metadata": {"order_no": "O-1"}}
    created = stripe_stack.control.post("/_sandbox/payments", json=body).json()
    intent = stripe_stack.client().v1.payment_intents.retrieve(created["id"])
    assert (intent.status, intent.amount, intent.metadata["order_no"]) == ("succeeded", 2500, "O-1")


def test_refund_beyond_remaining_amount_is_amount_too_large(stripe_stack: StripeStack):
    pi = stripe_stack.pay(1000)
    refund(stripe_stack, pi, new_refund_no(), amount=700)
    with pytest.raises(stripe.InvalidRequestError) as err:
        refund(stripe_stack, pi, new_refund_no(), amount=301)
    assert err.value.http_status == 400 and err.value.code == "amount_too_large"
    assert refund(stripe_stack, pi, new_refund_no()).amount == 300  # default: the remainder


def test_refund_of_unknown_payment_is_resource_missing(stripe_stack: StripeStack):
    with pytest.raises(stripe.InvalidRequestError) as err:
        refund(stripe_stack, "pi_unknown", new_refund_no(), amount=1)
    assert err.value.code == "resource_missing"


def test_unknown_refund_id_is_404(stripe_stack: StripeStack):
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_stack.client().v1.refunds.retrieve("re_missing")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


def test_list_refunds_filters_by_payment_and_auto_paginates_newest_first(
    stripe_stack: StripeStack,
):
    pi = stripe_stack.pay(1000)
    ids = [refund(stripe_stack, pi, new_refund_no(), amount=100).id for _ in range(5)]
    refund(stripe_stack, stripe_stack.pay(1000), new_refund_no(), amount=100)  # another payment
    page = stripe_stack.client().v1.refunds.list(params={"payment_intent": pi, "limit": 2})
    assert page.has_more is True and len(page.data) == 2
    assert [r.id for r in page.auto_paging_iter()] == list(reversed(ids))


def refunds_at(stack: StripeStack, *offsets: int) -> tuple[int, list[str]]:
    """Refunds over two payments, backdated to a fresh past day plus each offset (seconds)."""
    day, payments = past_day(), [stack.pay(1000), stack.pay(1000)]
    ids = []
    for i, offset in enumerate(offsets):
        made = refund(stack, payments[i % 2], new_refund_no(), amount=10)
        stack.backdate(made.id, day + offset)
        ids.append(made.id)
    return day, ids


def listed(stack: StripeStack, **params: Any) -> list[str]:
    # Built from keywords, so not the client's TypedDict: what goes on the wire is the same.
    page = stack.client().v1.refunds.list(params=params)  # type: ignore[arg-type]
    return [r.id for r in page.auto_paging_iter()]


def test_account_wide_list_honours_each_created_bound_newest_first(stripe_stack: StripeStack):
    day, (r0, r1, r2, r3) = refunds_at(stripe_stack, 0, 1, 2, 3)
    assert listed(stripe_stack, created={"gte": day + 1, "lt": day + 3}) == [r2, r1]
    assert listed(stripe_stack, created={"gt": day + 1, "lte": day + 3}) == [r3, r2]
    assert listed(stripe_stack, created={"gte": day, "lte": day + 3}) == [r3, r2, r1, r0]
    assert listed(stripe_stack, created=day + 2) == [r2]


def test_list_sorts_by_created_so_backdated_refunds_come_after_newer_ones(
    stripe_stack: StripeStack,
):
    day, (late, early) = refunds_at(stripe_stack, 50, 10)
    pi = stripe_stack.client().v1.refunds.retrieve(early).payment_intent
    newer = refund(stripe_stack, str(pi), new_refund_no(), amount=10).id  # created now
    assert listed(stripe_stack, payment_intent=pi, limit=1) == [newer, early]
    assert listed(stripe_stack, created={"gte": day, "lt": day + DAY}, limit=1) == [late, early]


def test_created_window_pages_through_ties_without_repeat_or_gap(stripe_stack: StripeStack):
    day, ids = refunds_at(stripe_stack, 5, 5, 5, 7, 7, 9, 5)
    window = {"gte": day, "lt": day + 10}
    first = stripe_stack.client().v1.refunds.list(
        params={"created": {"gte": day, "lt": day + 10}, "limit": 3}
    )
    assert first.has_more is True and len(first.data) == 3
    got = listed(stripe_stack, created=window, limit=3)
    # Newest created first; within one second the later insert first.
    assert got == [ids[5], ids[4], ids[3], ids[6], ids[2], ids[1], ids[0]]


@pytest.mark.parametrize(
    ("created", "code"),
    [({"gte": "yesterday"}, "parameter_invalid_integer"), ({"after": 1}, None)],
)
def test_bad_created_filter_is_a_400(
    stripe_stack: StripeStack, created: dict[str, object], code: str | None
):
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_stack.client().v1.refunds.list(params={"created": created})  # type: ignore[arg-type]
    assert err.value.http_status == 400 and err.value.code == code


def test_backdate_control_endpoint_moves_created(stripe_stack: StripeStack):
    pi, day = stripe_stack.pay(1000), past_day()
    created = refund(stripe_stack, pi, new_refund_no(), amount=10)
    moved = stripe_stack.control.post(
        f"/_sandbox/refunds/{created.id}/created", json={"created": day}
    )
    assert moved.status_code == 200 and moved.json()["created"] == day
    assert stripe_stack.client().v1.refunds.retrieve(created.id).created == day


@pytest.mark.parametrize("body", [{}, {"created": "yesterday"}, {"created": True}, [1]])
def test_backdate_with_a_bad_body_is_400_and_changes_nothing(
    stripe_stack: StripeStack, body: object
):
    created = refund(stripe_stack, stripe_stack.pay(1000), new_refund_no(), amount=10)
    response = stripe_stack.control.post(f"/_sandbox/refunds/{created.id}/created", json=body)
    assert response.status_code == 400
    assert stripe_stack.client().v1.refunds.retrieve(created.id).created == created.created


def test_backdate_of_an_unknown_refund_is_404(stripe_stack: StripeStack):
    response = stripe_stack.control.post(
        "/_sandbox/refunds/re_missing/created", json={"created": 1}
    )
    assert response.status_code == 404


def test_http_500_fault_hits_only_the_next_n_matching_requests(stripe_stack: StripeStack):
    pi = stripe_stack.pay(1000)
    stripe_stack.fault(method="POST", path_prefix="/v1/refunds", action="http_500", times=2)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as err:
            refund(stripe_stack, pi, new_refund_no())
        assert err.value.http_status == 500
    assert refund(stripe_stack, pi, new_refund_no(), amount=10).status == "pending"


def test_rate_limit_fault_is_a_429(stripe_stack: StripeStack):
    stripe_stack.fault(method="GET", path_prefix="/v1/refunds", action="rate_limit")
    with pytest.raises(stripe.RateLimitError) as err:
        stripe_stack.client().v1.refunds.list()
    assert err.value.http_status == 429


def test_timeout_fault_answers_late_but_still_creates_the_refund(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="timeout", delay=1.0)
    with pytest.raises(stripe.APIConnectionError):
        stripe_stack.client(timeout=0.3).v1.refunds.create(
            params={"payment_intent": pi, "metadata": {"refund_no": refund_no}}
        )
    time.sleep(0.9)
    assert len(stripe_stack.refunds(refund_no)[0]) == 1


def test_permanent_error_fault_refuses_with_charge_already_refunded(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="permanent_error")
    with pytest.raises(stripe.InvalidRequestError) as err:
        refund(stripe_stack, pi, refund_no)
    assert err.value.code == "charge_already_refunded"
    assert stripe_stack.refunds(refund_no) == ([], 1)


def test_fail_fault_moves_pending_to_failed_and_gives_the_amount_back(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="fail", failure_reason="lost_or_stolen_card")
    created = refund(stripe_stack, pi, refund_no)
    got = stripe_stack.recorder.wait_for(refund_no, lambda d: "refund.failed" in types(d))
    assert types(got) == FAILURE_EVENTS
    failed = stripe_stack.client().v1.refunds.retrieve(created.id)
    assert (failed.status, failed.failure_reason) == ("failed", "lost_or_stolen_card")
    assert refund(stripe_stack, pi, new_refund_no()).amount == 1000


def test_no_webhook_fault_sends_no_events(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="no_webhook")
    created = refund(stripe_stack, pi, refund_no)
    wait_status(stripe_stack, created.id, "succeeded")
    time.sleep(0.1)
    assert stripe_stack.recorder.for_refund(refund_no) == []
    events = stripe_stack.events(refund_no)
    assert len(events) == 4 and all(e["suppressed"] and not e["deliveries"] for e in events)


def test_duplicate_webhook_fault_delivers_every_event_twice(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="duplicate_webhook")
    refund(stripe_stack, pi, refund_no)
    got = stripe_stack.recorder.wait_for(refund_no, lambda d: len(d) >= 8)
    ids = [d.event["id"] for d in got]
    assert len(set(ids)) == 4 and all(ids.count(i) == 2 for i in ids)


def test_out_of_order_fault_sends_success_before_created(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="out_of_order_webhooks")
    refund(stripe_stack, pi, refund_no)
    got = stripe_stack.recorder.wait_for(refund_no, lambda d: len(d) >= 4)
    assert types(got) == [*SUCCESS_EVENTS[1:], "refund.created"]
    assert got[-1].event["data"]["object"]["status"] == "pending"


def test_fail_after_success_fault_fails_a_succeeded_refund_later(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="fail_after_success", after=0.2)
    created = refund(stripe_stack, pi, refund_no)
    got = stripe_stack.recorder.wait_for(refund_no, lambda d: "refund.failed" in types(d))
    assert types(got) == [
        *SUCCESS_EVENTS,
        "refund.updated",
        "charge.refund.updated",
        "refund.failed",
    ]
    assert got[-1].event["data"]["previous_attributes"]["status"] == "succeeded"
    assert stripe_stack.client().v1.refunds.retrieve(created.id).status == "failed"


def test_pm_card_refund_fail_refunds_fail_after_succeeding(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000, "pm_card_refundFail"), new_refund_no()
    created = refund(stripe_stack, pi, refund_no)
    wait_status(stripe_stack, created.id, "failed", timeout=3)


def test_pending_forever_fault_never_leaves_pending(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="pending_forever")
    created = refund(stripe_stack, pi, refund_no)
    time.sleep(REFUND_DELAY * 3)
    assert stripe_stack.client().v1.refunds.retrieve(created.id).status == "pending"
    assert types(stripe_stack.recorder.for_refund(refund_no)) == SUCCESS_EVENTS[:2]


def test_control_endpoints_force_success_and_late_failure(stripe_stack: StripeStack):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="pending_forever")
    created = refund(stripe_stack, pi, refund_no)
    ok = stripe_stack.control.post(f"/_sandbox/refunds/{created.id}/succeed")
    assert ok.json()["status"] == "succeeded"
    failed = stripe_stack.control.post(
        f"/_sandbox/refunds/{created.id}/fail", json={"failure_reason": "unknown"}
    )
    assert (failed.json()["status"], failed.json()["failure_reason"]) == ("failed", "unknown")
    again = stripe_stack.control.post(f"/_sandbox/refunds/{created.id}/succeed")
    assert again.status_code == 400


def test_bad_fault_spec_is_rejected(stripe_stack: StripeStack):
    response = stripe_stack.control.post("/_sandbox/faults", json={"action": "explode"})
    assert response.status_code == 400


def test_restarted_sandbox_keeps_payments_and_finishes_pending_refunds(tmp_path: Path):
    state, recorder = tmp_path / "stripe.json", WebhookRecorder()
    refund_no = new_refund_no()
    with running_sandbox(recorder, state_file=state) as stack:
        pi = stack.pay(1000)
        stack.fault(refund_no=refund_no, action="pending_forever")
        pending = refund(stack, pi, refund_no, amount=600)
    with running_sandbox(recorder, state_file=state, api_key=stack.api_key) as stack:
        assert stack.client().v1.refunds.retrieve(pending.id).status == "pending"
        ok = stack.control.post(f"/_sandbox/refunds/{pending.id}/succeed")
        assert ok.status_code == 200
        assert refund(stack, pi, refund_no, amount=600).id == pending.id  # key still known
        with pytest.raises(stripe.InvalidRequestError):
            refund(stack, pi, new_refund_no(), amount=401)


def test_unrecognized_url_is_a_stripe_404(stripe_stack: StripeStack):
    response = httpx.get(
        f"{stripe_stack.url}/v1/nothing",
        headers={"Authorization": f"Bearer {stripe_stack.api_key}"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


def late_failure(stack: StripeStack) -> tuple[str, str]:
    """A refund that succeeded, then failed through the control endpoint: (its id, refund_no)."""
    pi, refund_no = stack.pay(1000), new_refund_no()
    stack.fault(refund_no=refund_no, action="pending_forever")
    created = refund(stack, pi, refund_no)
    stack.control.post(f"/_sandbox/refunds/{created.id}/succeed").raise_for_status()
    stack.control.post(
        f"/_sandbox/refunds/{created.id}/fail", json={"failure_reason": "lost_or_stolen_card"}
    ).raise_for_status()
    return created.id, refund_no


def refunds_of(events: Any) -> list[str]:
    return [e.data.object.id for e in events]


def test_events_list_filters_by_type_and_created_newest_first(stripe_stack: StripeStack):
    since = int(time.time()) - 1
    refund_id, _ = late_failure(stripe_stack)
    failed = stripe_stack.client().v1.events.list(
        params={
            "type": "refund.failed",
            "created": {"gte": since, "lt": int(time.time()) + 2},
            "limit": 100,
        }
    )
    assert refund_id in refunds_of(failed.data)
    assert {e.type for e in failed.data} == {"refund.failed"}
    mine = [e for e in failed.data if e.data.object.id == refund_id]
    assert [(e.data.object.status, e.data.object.failure_reason) for e in mine] == [
        ("failed", "lost_or_stolen_card")
    ]
    assert [e.created for e in failed.data] == sorted(
        (e.created for e in failed.data), reverse=True
    )
    # Before the window: nothing of it.
    earlier = stripe_stack.client().v1.events.list(
        params={"type": "refund.failed", "created": {"lt": since}, "limit": 100}
    )
    assert refund_id not in refunds_of(earlier.data)


def test_events_list_takes_types_and_wildcards_but_not_both(stripe_stack: StripeStack):
    since = int(time.time()) - 1
    refund_id, _ = late_failure(stripe_stack)
    client = stripe_stack.client()
    chosen = client.v1.events.list(
        params={"types": ["refund.failed", "refund.created"], "created": {"gte": since}}
    )
    mine = [e.type for e in chosen.auto_paging_iter() if e.data.object.id == refund_id]
    assert sorted(mine) == ["refund.created", "refund.failed"]
    grouped = client.v1.events.list(params={"type": "refund.*", "created": {"gte": since}})
    mine = [e.type for e in grouped.auto_paging_iter() if e.data.object.id == refund_id]
    assert sorted(mine) == ["refund.created", "refund.failed", "refund.updated", "refund.updated"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"type": "refund.failed", "types": ["refund.created"]})


def test_events_list_pages_with_starting_after_and_has_more(
    stripe_stack: StripeStack, monkeypatch: pytest.MonkeyPatch
):
    since = int(time.time()) - 1
    ids = {late_failure(stripe_stack)[0] for _ in range(3)}
    params: EventListParams = {
        "type": "refund.failed",
        "created": {"gte": since},
        "limit": 1,
    }
    first = stripe_stack.client().v1.events.list(params=params)
    assert len(first.data) == 1 and first.has_more
    walked = [
        e.data.object.id
        for e in stripe_stack.client().v1.events.list(params=params).auto_paging_iter()
    ]
    assert ids <= set(walked) and len(walked) == len(set(walked))
    # The official module-level API too.
    monkeypatch.setattr(stripe, "api_base", stripe_stack.url)
    monkeypatch.setattr(stripe, "api_key", stripe_stack.api_key)
    listed = stripe.Event.list(**params)
    assert listed.data[0].id == first.data[0].id
    unknown = httpx.get(
        f"{stripe_stack.url}/v1/events",
        params={"starting_after": "evt_nope"},
        headers={"Authorization": f"Bearer {stripe_stack.api_key}"},
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "resource_missing")


def test_events_list_holds_events_the_webhook_endpoint_does_not_subscribe_to() -> None:
    with running_sandbox(webhook_events=frozenset({"refund.updated"})) as stack:
        refund_id, refund_no = late_failure(stack)
        listed = stack.client().v1.events.list(params={"type": "refund.failed"})
        assert refunds_of(listed.data) == [refund_id]
        sent = {e["event"]["type"] for e in stack.events(refund_no) if e["subscribed"]}
        assert "refund.failed" not in sent
