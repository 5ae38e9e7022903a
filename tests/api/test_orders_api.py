"""POST /v1/orders: idempotent by order_no, a different body is a conflict, bad input changes
nothing (SPEC §5); a paid order is checked against its payment at the gateway, and a payment is
one order's."""

from __future__ import annotations

from typing import Any

import pytest

from refunds.sandboxes.payments import pay_with_stripe
from tests.factories import Shop, uid


def stripe_payment(shop: Shop, amount: int = 5000, currency: str = "USD") -> str:
    """A PaymentIntent paid at the Stripe sandbox, as a shop's checkout makes it."""
    key = shop.stack.settings.stripe_api_key
    assert key is not None
    return pay_with_stripe(shop.stack.stripe_url, key, amount, currency)


def order_body(shop: Shop, **fields: Any) -> dict[str, Any]:
    """A paid Stripe order on a payment of its own, unless `fields` name another."""
    if "payment_ref" not in fields:
        fields["payment_ref"] = stripe_payment(shop)
    return {
        "order_no": uid("ord"),
        "user_id": shop.customer_id,
        "channel": "stripe",
        "currency": "USD",
        "total_amount": 5000,
        "paid_amount": 5000,
        "items": [{"sku": uid("sku"), "quantity": 1, "unit_amount": 5000}],
        "points_used": 120,
        "coupon_code": uid("cpn"),
        **fields,
    }


async def test_same_order_registered_twice_is_200_the_same_order(shop: Shop) -> None:
    body = order_body(shop)
    first = await shop.http.post("/v1/orders", json=body, headers=shop.admin)
    again = await shop.http.post("/v1/orders", json=body, headers=shop.admin)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert (first.json()["paid_amount"], first.json()["coupon"]["status"]) == (5000, "used")


async def test_same_order_no_with_another_body_is_409_and_keeps_the_first(shop: Shop) -> None:
    body = order_body(shop)
    assert (await shop.http.post("/v1/orders", json=body, headers=shop.admin)).status_code == 201
    changed = await shop.http.post(
        "/v1/orders", json={**body, "paid_amount": 4000}, headers=shop.admin
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "order_conflict"
    assert (await shop.get_order(body["order_no"]))["paid_amount"] == 5000


async def test_paid_amount_over_total_is_409_and_registers_nothing(shop: Shop) -> None:
    body = order_body(shop, paid_amount=5001)
    response = await shop.http.post("/v1/orders", json=body, headers=shop.admin)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_conflict"
    missing = await shop.http.get(f"/v1/orders/{body['order_no']}", headers=shop.admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "order_not_found"


@pytest.mark.parametrize(
    "change",
    [
        {"total_amount": 49.99},
        {"paid_amount": "5000"},
        {"channel": "paypal"},
        {"currency": "US$"},  # lower case is fine (issue 10), not a non-code
        {"status": "refunded"},
        {"fulfillment": "lost"},
        {"items": [{"sku": "same", "quantity": 1, "unit_amount": 1}] * 2},
    ],
    ids=["float", "string", "channel", "currency", "status", "fulfillment", "repeated_sku"],
)
async def test_bad_order_body_is_422_and_registers_nothing(
    shop: Shop, change: dict[str, Any]
) -> None:
    body = order_body(shop, **change)
    response = await shop.http.post("/v1/orders", json=body, headers=shop.admin)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    missing = await shop.http.get(f"/v1/orders/{body['order_no']}", headers=shop.admin)
    assert missing.status_code == 404


async def test_only_admins_register_orders(shop: Shop) -> None:
    body = order_body(shop)
    for who in (shop.customer, shop.approver, shop.ops):
        response = await shop.http.post("/v1/orders", json=body, headers=who)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert (await shop.http.post("/v1/orders", json=body)).status_code == 401
    missing = await shop.http.get(f"/v1/orders/{body['order_no']}", headers=shop.admin)
    assert missing.status_code == 404
