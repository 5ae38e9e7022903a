"""POST /v1/refunds refusals that the happy-path tests do not reach: each answers with its stable
code and leaves no refund, no reservation and no workflow behind (SPEC §5)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from tests.factories import Shop, uid


async def assert_nothing_left(
    shop: Shop, temporal: Client, order: dict[str, Any], refund_no: str
) -> None:
    after = await shop.get_order(order["order_no"])
    assert (after["refunds"], after["refundable_amount"]) == ([], order["paid_amount"])
    missing = await shop.http.get(f"/v1/refunds/{refund_no}", headers=shop.admin)
    assert missing.status_code == 404
    # Refused in the API: no workflow at all; refused by the apply step: its run has ended.
    try:
        run = await temporal.get_workflow_handle(f"refund-{refund_no}").describe()
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
    else:
        assert run.status == WorkflowExecutionStatus.COMPLETED


async def test_refund_in_another_currency_is_422_currency_mismatch(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=3000)
    refund_no = uid("rf")
    response = await shop.request_refund(order, 1000, refund_no=refund_no, currency="EUR")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "currency_mismatch"
    await assert_nothing_left(shop, temporal, order, refund_no)


@pytest.mark.parametrize("what", ["unknown_sku", "more_than_ordered"])
async def test_refund_items_not_in_the_order_are_422_invalid_refund_items(
    shop: Shop, temporal: Client, what: str
) -> None:
    order = await shop.order(amount=3000)
    ordered = order["items"][0]
    item = (
        {"sku": uid("sku"), "quantity": 1}
        if what == "unknown_sku"
        else {"sku": ordered["sku"], "quantity": ordered["quantity"] + 1}
    )
    refund_no = uid("rf")
    response = await shop.request_refund(order, 1000, refund_no=refund_no, items=[item])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_refund_items"
    await assert_nothing_left(shop, temporal, order, refund_no)


async def test_refund_of_an_unknown_order_is_404(shop: Shop) -> None:
    response = await shop.http.post(
        "/v1/refunds", headers=shop.admin, json={"order_no": uid("ord"), "amount": 100}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "order_not_found"


async def test_unknown_field_in_the_body_is_422(shop: Shop, temporal: Client) -> None:
    order = await shop.order(amount=3000)
    refund_no = uid("rf")
    response = await shop.request_refund(order, 1000, refund_no=refund_no, amount_usd=10)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    await assert_nothing_left(shop, temporal, order, refund_no)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_expired_or_foreign_tokens_are_401(shop: Shop, http: httpx.AsyncClient) -> None:
    secret = shop.stack.settings.jwt_secret
    assert secret is not None
    now = int(time.time())
    admin = {"sub": uid("admin"), "roles": ["admin"]}
    tokens = {
        "expired": jwt.encode({**admin, "iat": now - 7200, "exp": now - 3600}, secret),
        "other_secret": jwt.encode({**admin, "exp": now + 3600}, "not-our-secret-" * 3),
        "unsigned": jwt.encode({**admin, "exp": now + 3600}, "", algorithm="none"),
        "roles_not_a_list": jwt.encode({**admin, "roles": "admin", "exp": now + 3600}, secret),
    }
    for name, token in tokens.items():
        response = await http.get("/v1/refunds", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "unauthorized", name


async def test_customers_see_and_cancel_only_their_own(shop: Shop) -> None:
    order = await shop.order(amount=2500)
    refund = await shop.refund(order, 500)
    mine = await shop.http.get(f"/v1/refunds/{refund['refund_no']}", headers=shop.customer)
    assert (mine.status_code, mine.json()["amount"]) == (200, 500)
    stranger = shop.stack.token(uid("cust"), "customer")
    theirs = await shop.http.get(f"/v1/refunds/{refund['refund_no']}", headers=stranger)
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "refund_not_found")
    cancel = await shop.http.post(f"/v1/orders/{order['order_no']}/cancel", headers=stranger)
    assert (cancel.status_code, cancel.json()["error"]["code"]) == (404, "order_not_found")
    approve = await shop.approve(refund["refund_no"], headers=stranger)
    assert approve.status_code == 403
    assert (await shop.get_refund(refund["refund_no"]))["status"] == "pending_approval"
    assert (await shop.get_order(order["order_no"]))["status"] == "paid"


@pytest.mark.parametrize(
    "refund_no",
    ["", "ord.1", "a:b", "a b", "退款-1", "a|b", "x" * 65],
    ids=["empty", "dot", "colon", "space", "non_ascii", "pipe", "too_long"],
)
async def test_refund_no_no_gateway_accepts_is_422_invalid_refund_no(
    shop: Shop, refund_no: str
) -> None:
    order = await shop.order(amount=3000)
    response = await shop.request_refund(order, 1000, refund_no=refund_no)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_refund_no"
    after = await shop.get_order(order["order_no"])
    assert (after["refunds"], after["reserved_amount"]) == ([], 0)


async def test_refund_no_of_64_gateway_safe_characters_is_accepted(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    refund_no = ("Rf_-" + uid("x").replace("-", "_")).ljust(64, "9")
    refund = await shop.refund(order, 1000, refund_no=refund_no)
    assert refund["refund_no"] == refund_no
