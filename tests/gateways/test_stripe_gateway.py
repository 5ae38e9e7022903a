"""`StripeGateway` against the running Stripe sandbox, through the official client over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import pytest
import stripe

from refunds.domain.errors import GatewayPermanentError, GatewayTransientError, GatewayUnknownError
from refunds.domain.messages import Channel, GatewayLookup, GatewayRefundInput, GatewayStatus
from refunds.embedded.ports import free_port
from refunds.gateways import stripe_gateway
from refunds.gateways.base import InvalidNotification
from refunds.gateways.stripe_gateway import StripeConfig, StripeGateway
from tests.gateways.conftest import gateway_for
from tests.sandboxes.stripe_support import StripeStack, new_refund_no, types


def refund_input(
    pi: str, refund_no: str, amount: int, total: int = 1000, reason: str = ""
) -> GatewayRefundInput:
    return GatewayRefundInput(
        refund_no=refund_no,
        order_no=f"O-{refund_no}",
        channel=Channel.STRIPE,
        payment_ref=pi,
        amount=amount,
        currency="USD",
        total_amount=total,
        reason=reason,
    )


def lookup(pi: str, refund_no: str) -> GatewayLookup:
    return GatewayLookup(refund_no=refund_no, channel=Channel.STRIPE, payment_ref=pi)


def signed(stack: StripeStack, event: dict[str, Any], timestamp: int | None = None) -> tuple:
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, stack.webhook_secret, timestamp=timestamp
    )
    return {"Stripe-Signature": header}, body.encode()


async def wait_webhooks(stack: StripeStack, refund_no: str, event_type: str) -> list:
    return await asyncio.to_thread(
        stack.recorder.wait_for, refund_no, lambda d: event_type in types(d)
    )


async def test_refund_is_created_pending_then_reported_succeeded(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    created = await gateway.create_refund(refund_input(pi, refund_no, 400))
    assert (created.status, created.amount, created.currency) == (
        GatewayStatus.PROCESSING,
        400,
        "USD",
    )
    assert created.refund_no == refund_no and created.gateway_refund_id.startswith("re_")
    await asyncio.sleep(0.4)
    found = await gateway.get_refund(lookup(pi, refund_no))
    assert found is not None and found.status == GatewayStatus.SUCCEEDED
    assert found.gateway_refund_id == created.gateway_refund_id
    [sent] = stripe_stack.refunds(refund_no)[0]
    assert sent["metadata"] == {"refund_no": refund_no, "order_no": f"O-{refund_no}"}


async def test_creating_the_same_refund_twice_makes_one_gateway_refund(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    first = await gateway.create_refund(refund_input(pi, refund_no, 250))
    second = await gateway.create_refund(refund_input(pi, refund_no, 250))
    refunds, creates = stripe_stack.refunds(refund_no)
    assert first.gateway_refund_id == second.gateway_refund_id
    assert len(refunds) == 1 and creates == 1  # the lookup found it: no second create at all


async def test_concurrent_creates_of_one_refund_make_one_gateway_refund(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    results = await asyncio.gather(
        *(gateway.create_refund(refund_input(pi, refund_no, 100)) for _ in range(3))
    )
    assert len({r.gateway_refund_id for r in results}) == 1
    assert len(stripe_stack.refunds(refund_no)[0]) == 1


async def test_late_retry_after_idempotency_key_expiry_is_caught_by_metadata_lookup(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    # As if the first attempt's key had expired: same refund, unrelated idempotency key.
    earlier = stripe_stack.client().v1.refunds.create(
        params={"payment_intent": pi, "amount": 300, "metadata": {"refund_no": refund_no}},
        options={"idempotency_key": "expired-key-" + refund_no},
    )
    result = await gateway.create_refund(refund_input(pi, refund_no, 300))
    refunds, creates = stripe_stack.refunds(refund_no)
    assert result.gateway_refund_id == earlier.id
    assert len(refunds) == 1 and creates == 1


async def test_lookup_pages_through_all_refunds_of_one_payment(
    gateway: StripeGateway, stripe_stack: StripeStack, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(stripe_gateway, "LIST_PAGE_SIZE", 2)
    pi, oldest = stripe_stack.pay(1000), new_refund_no()
    await gateway.create_refund(refund_input(pi, oldest, 1))
    for _ in range(4):  # newest first: the oldest refund is now on the third page
        await gateway.create_refund(refund_input(pi, new_refund_no(), 1))
    found = await gateway.get_refund(lookup(pi, oldest))
    assert found is not None and found.amount == 1
    again = await gateway.create_refund(refund_input(pi, oldest, 1))
    assert again.gateway_refund_id == found.gateway_refund_id
    assert len(stripe_stack.refunds(oldest)[0]) == 1


async def test_http_500_twice_is_unknown_twice_then_one_refund(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(method="POST", path_prefix="/v1/refunds", action="http_500", times=2)
    for _ in range(2):
        with pytest.raises(GatewayUnknownError):
            await gateway.create_refund(refund_input(pi, refund_no, 500))
    result = await gateway.create_refund(refund_input(pi, refund_no, 500))
    refunds, creates = stripe_stack.refunds(refund_no)
    assert result.amount == 500 and len(refunds) == 1 and creates == 3


async def test_rate_limit_is_transient_not_unknown(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="rate_limit")
    with pytest.raises(GatewayTransientError, match="RateLimitError") as raised:
        await gateway.create_refund(refund_input(pi, refund_no, 100))
    assert not isinstance(raised.value, GatewayUnknownError)  # Stripe did not process it
    assert stripe_stack.refunds(refund_no)[0] == []


async def test_timeout_is_unknown_and_the_retry_returns_the_refund_made_meanwhile(
    stripe_stack: StripeStack,
):
    gateway = gateway_for(stripe_stack, timeout_seconds=0.3)
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="timeout", delay=0.6)
    with pytest.raises(GatewayUnknownError):
        await gateway.create_refund(refund_input(pi, refund_no, 100))
    await asyncio.sleep(0.5)
    retried = await gateway.create_refund(refund_input(pi, refund_no, 100))
    [only] = stripe_stack.refunds(refund_no)[0]
    assert retried.gateway_refund_id == only["id"]


async def test_unreachable_gateway_is_unknown_as_the_client_cannot_tell_refused_from_reset():
    config = StripeConfig("sk_test_x", f"http://127.0.0.1:{free_port()}", "whsec_x", 100, 1.0)
    with pytest.raises(GatewayUnknownError):
        await StripeGateway(config).create_refund(refund_input("pi_x", new_refund_no(), 1))


async def test_permanent_error_fault_is_permanent_with_stripe_code(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="permanent_error")
    with pytest.raises(GatewayPermanentError, match="charge_already_refunded"):
        await gateway.create_refund(refund_input(pi, refund_no, 100))


async def test_amount_over_the_payment_is_permanent(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    with pytest.raises(GatewayPermanentError, match="amount_too_large"):
        await gateway.create_refund(refund_input(pi, refund_no, 1001))
    assert stripe_stack.refunds(refund_no)[0] == []


async def test_refund_of_unknown_payment_is_permanent(gateway: StripeGateway):
    with pytest.raises(GatewayPermanentError, match="resource_missing"):
        await gateway.create_refund(refund_input("pi_missing", new_refund_no(), 100))


async def test_wrong_api_key_is_a_transient_config_error_not_a_refusal(stripe_stack: StripeStack):
    config = dataclasses.replace(gateway_for(stripe_stack).config, api_key="sk_test_not_ours")
    gateway, pi, refund_no = StripeGateway(config), stripe_stack.pay(1000), new_refund_no()
    with pytest.raises(GatewayTransientError, match="AuthenticationError") as raised:
        await gateway.create_refund(refund_input(pi, refund_no, 100))
    assert not isinstance(raised.value, GatewayUnknownError)  # Stripe turned it away
    with pytest.raises(GatewayTransientError, match="AuthenticationError"):
        await gateway.get_refund(lookup(pi, refund_no))  # a failed lookup is not "none"


async def test_lookup_answered_500_is_unknown_not_none(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    await gateway.create_refund(refund_input(pi, refund_no, 100))
    stripe_stack.fault(method="GET", path_prefix="/v1/refunds", action="http_500")
    with pytest.raises(GatewayUnknownError):
        await gateway.get_refund(lookup(pi, refund_no))


async def test_created_and_found_refunds_report_the_payment_they_refund(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    created = await gateway.create_refund(refund_input(pi, refund_no, 400))
    found = await gateway.get_refund(lookup(pi, refund_no))
    assert found is not None
    assert (created.payment_ref, created.amount) == (found.payment_ref, found.amount) == (pi, 400)


async def test_refund_found_under_our_refund_no_is_reported_as_stripe_has_it_not_refused(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    await gateway.create_refund(refund_input(pi, refund_no, 300))
    # Another amount under the same refund_no: the workflow compares, the adapter reports.
    found = await gateway.create_refund(refund_input(pi, refund_no, 500))
    assert (found.amount, found.payment_ref) == (300, pi)
    assert stripe_stack.refunds(refund_no)[1] == 1


def test_an_expanded_payment_intent_is_reported_by_its_id():
    refund = stripe.Refund.construct_from(
        {
            "id": "re_x",
            "object": "refund",
            "amount": 100,
            "currency": "usd",
            "status": "pending",
            "payment_intent": {"id": "pi_expanded", "object": "payment_intent"},
        },
        "sk_test_x",
    )
    assert stripe_gateway._to_gateway_refund("R-x", refund).payment_ref == "pi_expanded"


async def test_reason_goes_to_metadata_cut_to_stripes_500_characters(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    reason = "商品已售完，" * 100  # 600 characters
    await gateway.create_refund(refund_input(pi, refund_no, 100, reason=reason))
    [sent] = stripe_stack.refunds(refund_no)[0]
    assert sent["metadata"]["reason"] == reason[:500]
    assert sent["reason"] is None  # Stripe's own reason is an enum: left unset


async def test_get_refund_is_none_when_the_gateway_has_none(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi = stripe_stack.pay(1000)
    assert await gateway.get_refund(lookup(pi, new_refund_no())) is None
    assert await gateway.get_refund(lookup("pi_missing", new_refund_no())) is None


async def test_failed_refund_is_reported_failed_with_reason(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="fail", failure_reason="lost_or_stolen_card")
    await gateway.create_refund(refund_input(pi, refund_no, 100))
    await wait_webhooks(stripe_stack, refund_no, "refund.failed")
    found = await gateway.get_refund(lookup(pi, refund_no))
    assert found is not None
    assert (found.status, found.failure_reason) == (GatewayStatus.FAILED, "lost_or_stolen_card")


async def test_each_success_event_from_the_sandbox_parses_to_its_status(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    created = await gateway.create_refund(refund_input(pi, refund_no, 100))
    deliveries = await wait_webhooks(stripe_stack, refund_no, "charge.refund.updated")
    parsed = [gateway.parse_notification(d.headers, d.body) for d in deliveries]
    statuses = {p.event_type: [n.status for n in p.refunds] for p in parsed}
    assert statuses == {
        "refund.created": [GatewayStatus.PROCESSING],
        "charge.refunded": [GatewayStatus.PROCESSING],  # sent at creation, as Stripe does
        "refund.updated": [GatewayStatus.SUCCEEDED],
        "charge.refund.updated": [GatewayStatus.SUCCEEDED],
    }
    for p, d in zip(parsed, deliveries, strict=True):
        [note] = p.refunds
        assert p.notification_id == d.event["id"] == note.event_id
        assert (note.refund_no, note.gateway_refund_id) == (refund_no, created.gateway_refund_id)
        # refund.* carry the refund object, charge.* embed it: both say what it is for.
        assert (note.amount, note.payment_ref) == (100, pi)
        assert (note.source, note.event_type) == ("webhook", p.event_type)


async def test_failed_event_parses_to_failed_with_the_failure_reason(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(
        refund_no=refund_no, action="fail", failure_reason="expired_or_canceled_card"
    )
    await gateway.create_refund(refund_input(pi, refund_no, 100))
    deliveries = await wait_webhooks(stripe_stack, refund_no, "refund.failed")
    [note] = gateway.parse_notification(deliveries[-1].headers, deliveries[-1].body).refunds
    assert (note.status, note.failure_reason) == (GatewayStatus.FAILED, "expired_or_canceled_card")


async def test_fail_after_success_gives_a_failed_notification_after_a_succeeded_one(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi, refund_no = stripe_stack.pay(1000), new_refund_no()
    stripe_stack.fault(refund_no=refund_no, action="fail_after_success", after=0.2)
    await gateway.create_refund(refund_input(pi, refund_no, 100))
    deliveries = await wait_webhooks(stripe_stack, refund_no, "refund.failed")
    notes = [
        (note.event_type, note.status)
        for d in deliveries
        for note in gateway.parse_notification(d.headers, d.body).refunds
    ]
    succeeded = notes.index(("charge.refund.updated", GatewayStatus.SUCCEEDED))
    late = notes.index(("charge.refund.updated", GatewayStatus.FAILED))
    assert succeeded < late and notes[-1] == ("refund.failed", GatewayStatus.FAILED)


def charge_event(refunds: list[dict[str, Any]]) -> dict[str, Any]:
    charge = {"id": "ch_1", "object": "charge", "refunds": {"object": "list", "data": refunds}}
    return {"id": "evt_c", "object": "event", "type": "charge.refunded", "data": {"object": charge}}


def refund_obj(refund_no: str | None, status: str, refund_id: str = "re_1") -> dict[str, Any]:
    metadata = {"refund_no": refund_no} if refund_no else {}
    return {"id": refund_id, "object": "refund", "status": status, "metadata": metadata}


def test_notification_reports_amount_payment_and_currency_also_when_payment_intent_is_expanded(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    plain = refund_obj("R-p", "succeeded", "re_p") | {"amount": 250, "payment_intent": "pi_p"}
    plain["currency"] = "jpy"
    expanded = refund_obj("R-e", "succeeded", "re_e") | {"amount": 70}
    expanded["payment_intent"] = {"id": "pi_e", "object": "payment_intent"}
    parsed = gateway.parse_notification(*signed(stripe_stack, charge_event([plain, expanded])))
    assert [(n.amount, n.payment_ref, n.currency) for n in parsed.refunds] == [
        (250, "pi_p", "JPY"),
        (70, "pi_e", None),  # not said: never a mismatch
    ]


def test_notification_keeps_only_the_minimized_record_of_a_charge(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    event = charge_event([refund_obj("R-m", "succeeded", "re_m") | {"amount": 90}])
    event["data"]["object"] |= {
        "billing_details": {"name": "Jenny Rosen", "email": "jenny@example.com"},
        "payment_method_details": {"card": {"last4": "4242"}},
    }
    parsed = gateway.parse_notification(*signed(stripe_stack, event))
    [refund] = parsed.refunds
    assert (refund.refund_no, refund.amount) == ("R-m", 90)
    charge = parsed.payload["data"]["object"]  # type: ignore[index]
    assert charge["refunds"]["data"][0]["metadata"] == {"refund_no": "R-m"}
    assert "billing_details" not in charge and "payment_method_details" not in charge


def test_charge_refunded_yields_each_of_our_refunds_in_the_charge(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    refunds = [refund_obj("R-a", "succeeded", "re_a"), refund_obj(None, "succeeded", "re_x")]
    refunds.append(refund_obj("R-b", "pending", "re_b"))
    parsed = gateway.parse_notification(*signed(stripe_stack, charge_event(refunds)))
    assert [(n.refund_no, n.status) for n in parsed.refunds] == [
        ("R-a", GatewayStatus.SUCCEEDED),
        ("R-b", GatewayStatus.PROCESSING),
    ]


@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [
        ("pending", GatewayStatus.PROCESSING),
        ("requires_action", GatewayStatus.PROCESSING),
        ("succeeded", GatewayStatus.SUCCEEDED),
        ("failed", GatewayStatus.FAILED),
        ("canceled", GatewayStatus.FAILED),
    ],
)
def test_refund_statuses_map_to_gateway_statuses(
    gateway: StripeGateway, stripe_stack: StripeStack, stripe_status: str, expected: GatewayStatus
):
    event: dict[str, Any] = {"id": "evt_s", "object": "event", "type": "refund.updated"}
    event["data"] = {"object": refund_obj("R-s", stripe_status)}
    [note] = gateway.parse_notification(*signed(stripe_stack, event)).refunds
    assert note.status == expected


def test_refund_without_refund_no_and_other_event_types_carry_no_refunds(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    foreign: dict[str, Any] = {"id": "evt_f", "object": "event", "type": "refund.updated"}
    foreign["data"] = {"object": refund_obj(None, "succeeded")}
    other: dict[str, Any] = {"id": "evt_o", "object": "event", "type": "payment_intent.succeeded"}
    other["data"] = {"object": {"id": "pi_1", "object": "payment_intent"}}
    for event in (foreign, other):
        parsed = gateway.parse_notification(*signed(stripe_stack, event))
        assert parsed.refunds == [] and parsed.notification_id == event["id"]


def test_header_name_is_case_insensitive(gateway: StripeGateway, stripe_stack: StripeStack):
    headers, body = signed(stripe_stack, charge_event([refund_obj("R-h", "succeeded")]))
    lowered = {"stripe-signature": headers["Stripe-Signature"]}
    assert gateway.parse_notification(lowered, body).refunds[0].refund_no == "R-h"


def test_forged_signature_is_invalid(gateway: StripeGateway, stripe_stack: StripeStack):
    body = json.dumps(charge_event([refund_obj("R-f", "succeeded")]))
    forged = stripe.WebhookSignature.generate_signature_header(body, "whsec_not_ours")
    with pytest.raises(InvalidNotification) as err:
        gateway.parse_notification({"Stripe-Signature": forged}, body.encode())
    assert err.value.code == "invalid_signature"


def test_stale_timestamp_is_invalid(gateway: StripeGateway, stripe_stack: StripeStack):
    stale = int(time.time()) - 301
    headers, body = signed(stripe_stack, charge_event([]), timestamp=stale)
    with pytest.raises(InvalidNotification) as err:
        gateway.parse_notification(headers, body)
    assert err.value.code == "invalid_signature"


def test_tampered_body_is_invalid(gateway: StripeGateway, stripe_stack: StripeStack):
    headers, body = signed(stripe_stack, charge_event([refund_obj("R-t", "failed")]))
    with pytest.raises(InvalidNotification) as err:
        gateway.parse_notification(headers, body.replace(b"failed", b"succeeded"))
    assert err.value.code == "invalid_signature"


def test_missing_signature_is_invalid(gateway: StripeGateway, stripe_stack: StripeStack):
    with pytest.raises(InvalidNotification) as err:
        gateway.parse_notification({}, json.dumps(charge_event([])).encode())
    assert err.value.code == "invalid_signature"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_signed_but_unreadable_body_is_invalid_payload(
    gateway: StripeGateway, stripe_stack: StripeStack, body: bytes
):
    text = body.decode("latin-1")
    header = stripe.WebhookSignature.generate_signature_header(text, stripe_stack.webhook_secret)
    with pytest.raises(InvalidNotification) as err:
        gateway.parse_notification({"Stripe-Signature": header}, body)
    assert err.value.code in {"invalid_payload", "invalid_signature"}


# --- the payment an order is registered on ------------------------------------------------------


async def test_payment_is_read_with_what_stripe_captured_and_its_currency_upper_case(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi = stripe_stack.pay(1234)
    payment = await gateway.get_payment(pi)
    assert payment is not None
    assert (payment.payment_ref, payment.succeeded, payment.gateway_status) == (
        pi,
        True,
        "succeeded",
    )
    assert (payment.captured, payment.currency) == (1234, "USD")


async def test_unconfirmed_payment_is_read_as_not_succeeded_with_nothing_captured(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    intent = stripe_stack.client().v1.payment_intents.create(
        params={"amount": 800, "currency": "jpy"}
    )
    payment = await gateway.get_payment(intent.id)
    assert payment is not None
    assert (payment.succeeded, payment.gateway_status, payment.captured, payment.currency) == (
        False,
        "requires_payment_method",
        0,
        "JPY",
    )


async def test_unknown_or_impossible_payment_intent_is_none(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    assert await gateway.get_payment("pi_0000000000000000notthere") is None
    # Never sent: not a PaymentIntent id (and not a path to put in a URL).
    stripe_stack.fault(method="GET", path_prefix="/v1/", action="http_500", times=1)
    try:
        assert await gateway.get_payment("../charges/ch_1") is None
        assert await gateway.get_payment("") is None
    finally:
        stripe_stack.control.delete("/_sandbox/faults").raise_for_status()


async def test_payment_read_on_a_5xx_is_unknown_never_a_missing_payment(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    pi = stripe_stack.pay(500)
    stripe_stack.fault(method="GET", path_prefix="/v1/payment_intents", action="http_500", times=1)
    with pytest.raises(GatewayUnknownError):
        await gateway.get_payment(pi)
    assert await gateway.get_payment(pi) is not None
