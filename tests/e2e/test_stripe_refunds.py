"""The refund workflow end to end on Stripe, through HTTP against the real stack (issue 3)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from tests.stack import Stack


async def gateway_refunds(stack: Stack, refund_no: str) -> tuple[list[dict], int]:
    """What the Stripe sandbox holds for this refund_no, and how many creates reached it."""
    body = await sandbox(
        stack.stripe_url, "GET", "/_sandbox/refunds", params={"refund_no": refund_no}
    )
    return body["data"], int(body["create_requests"].get(refund_no, 0))


async def test_full_refund_succeeds_and_refunds_the_order(shop: Shop) -> None:
    order = await shop.order(amount=10000)
    refund = await shop.refund(order, 10000)
    assert refund["status"] == "pending_approval"
    assert (await shop.approve(refund["refund_no"])).status_code == 200
    done = await shop.wait_status(refund["refund_no"], "succeeded")
    assert done["approved_by"] and done["gateway_refund_id"].startswith("re_")
    assert {"requested", "approved", "gateway_submitted", "succeeded"} <= set(events(done))
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"], after["refundable_amount"]) == (
        10000,
        "refunded",
        0,
    )
    at_gateway, creates = await gateway_refunds(shop.stack, refund["refund_no"])
    assert [(r["amount"], r["status"]) for r in at_gateway] == [(10000, "succeeded")]
    assert creates == 1


async def test_two_partial_refunds_complete_the_order(shop: Shop) -> None:
    order = await shop.order(amount=10000)
    first = await shop.refund(order, 4000)
    second = await shop.refund(order, 6000)
    for refund in (first, second):
        assert (await shop.approve(refund["refund_no"])).status_code == 200
    for refund in (first, second):
        await shop.wait_status(refund["refund_no"], "succeeded")
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (10000, "refunded")
    over = await shop.request_refund(order, 1)
    assert over.status_code == 409


async def test_partial_refund_keeps_the_order_paid(shop: Shop) -> None:
    order = await shop.order(amount=10000)
    refund = await shop.refund(order, 2500)
    await shop.approve(refund["refund_no"])
    await shop.wait_status(refund["refund_no"], "succeeded")
    after = await shop.get_order(order["order_no"])
    assert (after["status"], after["refunded_amount"], after["refundable_amount"]) == (
        "paid",
        2500,
        7500,
    )


async def test_rejected_refund_releases_the_reservation_and_never_reaches_stripe(
    shop: Shop,
) -> None:
    order = await shop.order(amount=5000)
    refund = await shop.refund(order, 5000)
    assert (await shop.get_order(order["order_no"]))["refundable_amount"] == 0
    response = await shop.http.post(
        f"/v1/refunds/{refund['refund_no']}/reject",
        json={"reason": "used item"},
        headers=shop.approver,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert (await shop.get_order(order["order_no"]))["refundable_amount"] == 5000
    assert await gateway_refunds(shop.stack, refund["refund_no"]) == ([], 0)
    again = await shop.approve(refund["refund_no"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "refund_not_pending_approval"


async def test_no_decision_within_the_approval_timeout_expires_the_refund(shop: Shop) -> None:
    impatient = shop.stack.api(
        shop.stack.settings.model_copy(update={"approval_timeout": timedelta(seconds=1)})
    )
    order = await shop.order(amount=3000)
    async with httpx.AsyncClient(base_url=impatient, timeout=30) as http:
        response = await http.post(
            "/v1/refunds",
            headers=shop.customer,
            json={"order_no": order["order_no"], "amount": 3000},
        )
    assert response.status_code == 202, response.text
    refund = await shop.wait_status(response.json()["refund_no"], "expired", timeout=20)
    assert "expired" in events(refund)
    assert (await shop.get_order(order["order_no"]))["refundable_amount"] == 3000


async def test_approver_who_requested_the_refund_is_refused_403(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    refund = await shop.refund(order, 1000, as_=shop.admin)
    assert refund["source"] == "admin"
    response = await shop.approve(refund["refund_no"], headers=shop.admin)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "approver_is_requester"
    assert (await shop.get_refund(refund["refund_no"]))["status"] == "pending_approval"


async def test_refund_over_refundable_amount_is_409_and_leaves_nothing(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=3000)
    refund_no = uid("rf")
    response = await shop.request_refund(order, 3001, refund_no=refund_no)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "refund_exceeds_refundable"
    missing = await shop.http.get(f"/v1/refunds/{refund_no}", headers=shop.admin)
    assert missing.status_code == 404
    description = await temporal.get_workflow_handle(f"refund-{refund_no}").describe()
    assert description.status != WorkflowExecutionStatus.RUNNING
    assert (await shop.get_order(order["order_no"]))["refundable_amount"] == 3000


async def test_same_request_twice_is_one_refund_one_workflow_one_gateway_refund(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=4000)
    key = uid("idem")
    headers = {**shop.customer, "Idempotency-Key": key}
    body = {"order_no": order["order_no"], "amount": 4000, "reason": "twice"}
    first, second = await asyncio.gather(
        shop.http.post("/v1/refunds", json=body, headers=headers),
        shop.http.post("/v1/refunds", json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    refund_no = first.json()["refund_no"]
    assert second.json()["refund_no"] == refund_no
    third = await shop.http.post("/v1/refunds", json=body, headers=headers)
    assert third.json()["refund_no"] == refund_no
    conflicting = await shop.http.post("/v1/refunds", json={**body, "amount": 10}, headers=headers)
    assert conflicting.status_code == 409
    assert conflicting.json()["error"]["code"] == "refund_conflict"
    await shop.approve(refund_no)
    await shop.wait_status(refund_no, "succeeded")
    runs = [w async for w in temporal.list_workflows(f"WorkflowId = 'refund-{refund_no}'")]
    assert len(runs) == 1
    at_gateway, creates = await gateway_refunds(shop.stack, refund_no)
    assert len(at_gateway) == 1 and creates == 1
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 4000


async def test_forged_webhook_is_rejected_and_changes_nothing(shop: Shop) -> None:
    order = await shop.order(amount=2000)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    refund = await shop.refund(order, 2000, refund_no=refund_no)
    await shop.approve(refund_no)
    submitted = await wait_event(shop, refund_no, "gateway_submitted")
    event = {
        "id": uid("evt"),
        "object": "event",
        "type": "refund.updated",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "re_forged",
                "object": "refund",
                "amount": 2000,
                "status": "succeeded",
                "metadata": {"refund_no": refund_no},
            }
        },
    }
    payload = json.dumps(event)
    forged = {
        "Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}",
        "Content-Type": "application/json",
    }
    response = await shop.http.post("/v1/webhooks/stripe", content=payload, headers=forged)
    assert response.status_code == 400
    unsigned = await shop.http.post("/v1/webhooks/stripe", content=payload)
    assert unsigned.status_code == 400
    await asyncio.sleep(1)
    still = await shop.get_refund(refund_no)
    assert still["status"] == "processing"
    # The sandbox's genuine notifications are on the timeline; nothing of the forged one is.
    moves = [e for e in events(still) if e != "gateway_notification"]
    assert moves == [e for e in events(submitted) if e != "gateway_notification"]
    assert all(e["detail"].get("gateway_refund_id") != "re_forged" for e in still["timeline"])
    assert refund["refund_no"] == refund_no


async def test_lost_webhook_is_caught_up_by_polling(shop: Shop) -> None:
    order = await shop.order(amount=2500)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "no_webhook")
    await shop.refund(order, 2500, refund_no=refund_no)
    await shop.approve(refund_no)
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    [succeeded] = [e for e in done["timeline"] if e["event"] == "succeeded"]
    assert succeeded["detail"]["via"] == "poll"
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 2500


async def test_gateway_5xx_twice_then_success_is_one_refund_at_stripe(shop: Shop) -> None:
    order = await shop.order(amount=1500)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "http_500", times=2)
    await shop.refund(order, 1500, refund_no=refund_no)
    await shop.approve(refund_no)
    await shop.wait_status(refund_no, "succeeded", timeout=30)
    at_gateway, creates = await gateway_refunds(shop.stack, refund_no)
    assert creates == 3
    assert [(r["amount"], r["status"]) for r in at_gateway] == [(1500, "succeeded")]


async def test_permanent_gateway_error_fails_and_frees_the_amount(shop: Shop) -> None:
    order = await shop.order(amount=1800)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "permanent_error")
    await shop.refund(order, 1800, refund_no=refund_no)
    await shop.approve(refund_no)
    failed = await shop.wait_status(refund_no, "failed", timeout=30)
    assert "gateway_refused" in events(failed)
    after = await shop.get_order(order["order_no"])
    assert (after["refundable_amount"], after["refunded_amount"], after["status"]) == (
        1800,
        0,
        "paid",
    )
    retry = await shop.refund(order, 1800)
    assert retry["status"] == "pending_approval"


async def test_worker_killed_mid_refund_completes_exactly_once(shop: Shop) -> None:
    order = await shop.order(amount=2200)
    refund_no = uid("rf")
    # The create call is slow: the worker dies while it is in flight at the gateway.
    await stripe_fault(shop.stack, refund_no, "timeout", delay=2.0)
    await shop.refund(order, 2200, refund_no=refund_no)
    await shop.approve(refund_no)
    for _ in range(100):  # kill exactly while the create call is held at the gateway
        if (await gateway_refunds(shop.stack, refund_no))[1] >= 1:
            break
        await asyncio.sleep(0.05)
    shop.stack.kill_worker()
    assert (await gateway_refunds(shop.stack, refund_no))[1] == 1
    await asyncio.sleep(2.5)  # meanwhile the gateway finishes the refund nobody waits for
    shop.stack.restart_worker()
    done = await shop.wait_status(refund_no, "succeeded", timeout=60)
    at_gateway, creates = await gateway_refunds(shop.stack, refund_no)
    # The retry found the refund by its refund_no instead of creating a second one.
    assert [(r["amount"], r["status"]) for r in at_gateway] == [(2200, "succeeded")]
    assert creates == 1
    assert events(done).count("succeeded") == 1
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (2200, "refunded")


@pytest.mark.parametrize("amount", [10.5, "100", 0, -5])
async def test_bad_amount_is_422(shop: Shop, amount: object) -> None:
    order = await shop.order(amount=1000)
    response = await shop.http.post(
        "/v1/refunds", headers=shop.customer, json={"order_no": order["order_no"], "amount": amount}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert (await shop.get_order(order["order_no"]))["refunds"] == []


async def test_auth_missing_token_401_wrong_role_403_other_customer_404(shop: Shop) -> None:
    order = await shop.order(amount=1000)
    path = f"/v1/orders/{order['order_no']}"
    assert (await shop.http.get(path)).status_code == 401
    bad = await shop.http.get(path, headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401
    stranger = shop.stack.token(uid("cust"), "customer")
    assert (await shop.http.get(path, headers=stranger)).status_code == 404
    refund = await shop.http.post(
        "/v1/refunds", headers=stranger, json={"order_no": order["order_no"], "amount": 100}
    )
    assert refund.status_code == 404
    listing = await shop.http.get("/v1/refunds", headers=shop.customer)
    assert listing.status_code == 403
    assert (await shop.approve("nope", headers=shop.customer)).status_code == 403
