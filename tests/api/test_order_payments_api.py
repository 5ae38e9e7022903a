"""POST /v1/orders checks a paid order against its payment at the gateway (through the
worker's PaymentCheck workflow) and refuses every contradiction with its code, registering
nothing; a payment is one order's; a gateway that does not answer is 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import stripe

from refunds.sandboxes.payments import pay_with_wechatpay
from tests.api.test_orders_api import order_body, stripe_payment
from tests.factories import Shop, sandbox, uid


def wechat_body(shop: Shop, payment_ref: str, **fields: Any) -> dict[str, Any]:
    return order_body(
        shop, **({"channel": "wechatpay", "currency": "CNY", "payment_ref": payment_ref} | fields)
    )


async def register(shop: Shop, body: dict[str, Any]) -> httpx.Response:
    return await shop.http.post("/v1/orders", json=body, headers=shop.admin)


async def refused(shop: Shop, body: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    """The registration is refused with `code`, and no order exists afterwards."""
    response = await register(shop, body)
    assert response.status_code == status, response.text
    error = dict(response.json()["error"])
    assert error["code"] == code
    missing = await shop.http.get(f"/v1/orders/{body['order_no']}", headers=shop.admin)
    assert missing.status_code == 404
    return error


@pytest_asyncio.fixture
async def clean_faults(shop: Shop) -> AsyncIterator[None]:
    yield
    await sandbox(shop.stack.stripe_url, "DELETE", "/_sandbox/faults")
    await sandbox(shop.stack.wechat_url, "DELETE", "/sandbox/faults")


async def test_paid_order_on_its_succeeded_payment_is_registered(shop: Shop) -> None:
    body = order_body(shop)
    response = await register(shop, body)
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["status"], order["paid_amount"], order["currency"]) == ("paid", 5000, "USD")
    assert order["payment_ref"] == body["payment_ref"]


async def test_jpy_order_on_a_usd_payment_is_422_payment_currency_mismatch(shop: Shop) -> None:
    body = order_body(shop, currency="JPY")  # a USD 50.00 PaymentIntent
    error = await refused(shop, body, 422, "payment_currency_mismatch")
    assert (error["param"], error["type"]) == ("currency", "invalid_request_error")
    assert "USD" in error["message"] and "JPY" in error["message"]


async def test_paid_amount_above_what_stripe_captured_is_422(shop: Shop) -> None:
    body = order_body(shop, payment_ref=stripe_payment(shop, amount=4999))
    error = await refused(shop, body, 422, "paid_amount_exceeds_captured")
    assert error["param"] == "paid_amount"
    assert "5000" in error["message"] and "4999" in error["message"]


async def test_paid_amount_below_what_was_captured_is_registered(shop: Shop) -> None:
    # A partly paid order (the rest paid otherwise): its refunds stay within what it says.
    body = order_body(shop, paid_amount=3000, payment_ref=stripe_payment(shop, amount=5000))
    response = await register(shop, body)
    assert response.status_code == 201, response.text
    assert response.json()["paid_amount"] == 3000


async def test_unknown_payment_intent_is_422_payment_not_found(shop: Shop) -> None:
    await refused(
        shop, order_body(shop, payment_ref=f"pi_{uid('x')[2:]}"), 422, "payment_not_found"
    )
    # A reference no PaymentIntent can have is never sent to Stripe at all.
    await refused(shop, order_body(shop, payment_ref="../charges/ch_1"), 422, "payment_not_found")


async def test_unconfirmed_payment_intent_is_409_payment_not_succeeded(shop: Shop) -> None:
    key = shop.stack.settings.stripe_api_key
    assert key is not None
    client = stripe.StripeClient(key, base_addresses={"api": shop.stack.stripe_url})
    intent = client.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    error = await refused(
        shop, order_body(shop, payment_ref=intent.id), 409, "payment_not_succeeded"
    )
    assert "requires_payment_method" in error["message"]


async def test_paid_order_without_a_payment_ref_is_422(shop: Shop) -> None:
    await refused(shop, order_body(shop, payment_ref=None), 422, "payment_ref_required")


async def test_pending_orders_need_no_payment_and_may_both_have_none(shop: Shop) -> None:
    for _ in range(2):
        body = order_body(shop, status="pending", paid_amount=0, payment_ref=None)
        response = await register(shop, body)
        assert response.status_code == 201, response.text
        assert (response.json()["status"], response.json()["payment_ref"]) == ("pending", None)


async def test_same_payment_ref_on_a_second_order_is_409_and_keeps_the_first(shop: Shop) -> None:
    first = order_body(shop)
    assert (await register(shop, first)).status_code == 201
    second = order_body(shop, payment_ref=first["payment_ref"])
    error = await refused(shop, second, 409, "payment_ref_in_use")
    assert (error["param"], error["type"]) == ("payment_ref", "conflict_error")
    assert first["order_no"] in error["message"]
    assert (await shop.get_order(first["order_no"]))["payment_ref"] == first["payment_ref"]
    # The same order again is still the same order.
    assert (await register(shop, first)).status_code == 200


async def test_two_orders_registered_at_once_on_one_payment_one_wins_the_other_is_409(
    shop: Shop,
) -> None:
    first = order_body(shop)
    second = order_body(shop, payment_ref=first["payment_ref"])
    answers = await asyncio.gather(register(shop, first), register(shop, second))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [lost] = [a for a in answers if a.status_code == 409]
    assert lost.json()["error"]["code"] == "payment_ref_in_use"
    [won] = [a for a in answers if a.status_code == 201]
    assert won.json()["payment_ref"] == first["payment_ref"]
    # And the same order twice at once is one order: 201 and 200.
    again = order_body(shop)
    twice = await asyncio.gather(register(shop, again), register(shop, again))
    assert sorted(a.status_code for a in twice) == [200, 201], [a.text for a in twice]
    assert twice[0].json() == twice[1].json()


async def test_same_payment_ref_on_a_pending_order_is_409_too(shop: Shop) -> None:
    first = order_body(shop)
    assert (await register(shop, first)).status_code == 201
    pending = order_body(shop, status="pending", paid_amount=0, payment_ref=first["payment_ref"])
    await refused(shop, pending, 409, "payment_ref_in_use")


async def test_repeat_of_a_registration_is_200_without_asking_the_gateway_again(
    shop: Shop, clean_faults: None
) -> None:
    body = order_body(shop)
    first = await register(shop, body)
    assert first.status_code == 201
    # Stripe now fails every read of a PaymentIntent: a second check would be a 503.
    fault = {"action": "http_500", "method": "GET", "path_prefix": "/v1/payment_intents"}
    await sandbox(shop.stack.stripe_url, "POST", "/_sandbox/faults", json=fault | {"times": 20})
    again = await register(shop, body)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()


async def test_stripe_not_answering_is_503_gateway_unavailable_and_registers_nothing(
    shop: Shop, clean_faults: None
) -> None:
    body = order_body(shop)
    fault = {"action": "http_500", "method": "GET", "path_prefix": "/v1/payment_intents"}
    await sandbox(shop.stack.stripe_url, "POST", "/_sandbox/faults", json=fault | {"times": 20})
    error = await refused(shop, body, 503, "gateway_unavailable")
    assert error["type"] == "api_error"
    await sandbox(shop.stack.stripe_url, "DELETE", "/_sandbox/faults")
    # Nothing was decided: the same registration goes through once Stripe answers.
    assert (await register(shop, body)).status_code == 201


async def test_wechatpay_paid_transaction_is_registered(shop: Shop) -> None:
    ref = pay_with_wechatpay(shop.stack.wechat_url, 5000)
    response = await register(shop, wechat_body(shop, ref))
    assert response.status_code == 201, response.text
    assert (response.json()["channel"], response.json()["payment_ref"]) == ("wechatpay", ref)


async def test_wechatpay_unknown_transaction_is_422_payment_not_found(shop: Shop) -> None:
    await refused(shop, wechat_body(shop, "4200" + "0" * 28), 422, "payment_not_found")


@pytest.mark.parametrize("trade_state", ["NOTPAY", "CLOSED"])
async def test_wechatpay_transaction_not_paid_is_409_payment_not_succeeded(
    shop: Shop, trade_state: str
) -> None:
    ref = pay_with_wechatpay(shop.stack.wechat_url, 5000, trade_state=trade_state)
    error = await refused(shop, wechat_body(shop, ref), 409, "payment_not_succeeded")
    assert trade_state in error["message"]


async def test_wechatpay_paid_above_the_transaction_total_is_422(shop: Shop) -> None:
    ref = pay_with_wechatpay(shop.stack.wechat_url, 4000)
    await refused(shop, wechat_body(shop, ref), 422, "paid_amount_exceeds_captured")


async def test_wechatpay_order_in_another_currency_than_its_transaction_is_422(
    shop: Shop,
) -> None:
    ref = pay_with_wechatpay(shop.stack.wechat_url, 5000, currency="CNY")
    body = wechat_body(shop, ref, currency="USD")
    await refused(shop, body, 422, "payment_currency_mismatch")


async def test_wechatpay_not_answering_is_503_and_registers_nothing(
    shop: Shop, clean_faults: None
) -> None:
    ref = pay_with_wechatpay(shop.stack.wechat_url, 5000)
    fault = {"action": "http_500", "method": "GET", "path_prefix": "/v3/pay/", "times": 20}
    await sandbox(shop.stack.wechat_url, "POST", "/sandbox/faults", json=fault)
    await refused(shop, wechat_body(shop, ref), 503, "gateway_unavailable")
