"""Outcomes past the happy path on Stripe: deadline → abnormal → ops, late failure, auto-approve,
duplicate and out-of-order events."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from refunds.domain.messages import RefundStatus
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.refund import RefundWorkflow


async def current_details(temporal: Client, refund_no: str) -> str:
    """The workflow's current details, as the UI fetches them (the built-in metadata query)."""
    metadata = await temporal.get_workflow_handle(f"refund-{refund_no}").query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata.current_details


async def test_no_terminal_answer_by_the_deadline_is_abnormal_until_ops_resolve(
    shop: Shop, temporal: Client
) -> None:
    hasty = shop.stack.api(
        shop.stack.settings.model_copy(update={"outcome_deadline": timedelta(seconds=3)})
    )
    order = await shop.order(amount=2000)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    async with httpx.AsyncClient(base_url=hasty, timeout=30) as http:
        response = await http.post(
            "/v1/refunds",
            headers=shop.customer,
            json={"order_no": order["order_no"], "amount": 2000, "refund_no": refund_no},
        )
        assert response.status_code == 202, response.text
    await shop.approve(refund_no)
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "outcome_deadline_passed" in events(abnormal)
    assert (await shop.get_order(order["order_no"]))["refundable_amount"] == 0
    # What ops read on the workflow's page in the Temporal UI.
    details = await current_details(temporal, refund_no)
    assert details.startswith("**abnormal** after `outcome_deadline_passed` by system")
    assert f"`POST /v1/refunds/{refund_no}/resolve`" in details

    denied = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve", headers=shop.approver, json={"outcome": "succeeded"}
    )
    assert denied.status_code == 403
    resolved = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve",
        headers=shop.ops,
        json={"outcome": "succeeded", "note": "paid by bank transfer"},
    )
    assert resolved.status_code == 200, resolved.text
    done = await shop.wait_status(refund_no, "succeeded")
    assert "resolved_succeeded" in events(done)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (2000, "refunded")
    again = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve", headers=shop.ops, json={"outcome": "failed"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "refund_not_abnormal"


async def test_succeeded_refund_reported_failed_later_becomes_abnormal_for_ops(shop: Shop) -> None:
    order = await shop.order(amount=3000, points_used=90, coupon_code=uid("cpn"))
    sku = order["items"][0]["sku"]
    refund_no = uid("rf")
    await stripe_fault(
        shop.stack,
        refund_no,
        "fail_after_success",
        after=6,  # seconds after success: room to observe "succeeded" first, even under load
        failure_reason="expired_or_canceled_card",
    )
    await shop.refund(order, 3000, refund_no=refund_no)
    await shop.approve(refund_no)
    await shop.wait_status(refund_no, "succeeded")
    restored = await shop.get_order(order["order_no"])
    assert (restored["refunded_amount"], restored["restored_points"]) == (3000, 90)
    assert (restored["restocked_items"], restored["coupon"]["status"]) == ({sku: 2}, "available")
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    late = [e for e in abnormal["timeline"] if e["event"] == "gateway_failed_after_success"]
    assert late and late[0]["detail"]["failure_reason"] == "expired_or_canceled_card"
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (0, "paid")
    assert after["refundable_amount"] == 0  # still reserved until ops decide
    assert after["restored_points"] == 90  # nothing is taken back before ops decide

    resolved = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve",
        headers=shop.ops,
        json={"outcome": "failed", "note": "card closed, retry"},
    )
    assert resolved.status_code == 200, resolved.text
    failed = await shop.wait_status(refund_no, "failed")
    final = await shop.get_order(order["order_no"])
    assert (final["refunded_amount"], final["refundable_amount"]) == (0, 3000)
    # No money went back: the points, stock and coupon it restored are taken back.
    reversed_ = await wait_event(shop, refund_no, "restores_reversed")
    [taken] = [e["detail"] for e in reversed_["timeline"] if e["event"] == "restores_reversed"]
    assert (taken["points_taken_back"], taken["unstocked"]) == (90, 2)
    assert taken["coupon_taken_back"] == 1
    assert "resolved_failed" in events(failed)
    final = await shop.get_order(order["order_no"])
    assert (final["restored_points"], final["restocked_items"]) == (0, {})
    assert final["coupon"]["status"] == "used"

    retry = await shop.refund(order, 3000)  # a new refund pays back and restores, once
    await shop.approve(retry["refund_no"])
    await shop.wait_status(retry["refund_no"], "succeeded")
    done = await shop.get_order(order["order_no"])
    assert (done["refunded_amount"], done["status"], done["restored_points"]) == (
        3000,
        "refunded",
        90,
    )
    assert (done["restocked_items"], done["coupon"]["status"]) == ({sku: 2}, "available")


async def test_admin_refund_within_the_auto_approve_limit_needs_no_approver(shop: Shop) -> None:
    lenient = shop.stack.api(
        shop.stack.settings.model_copy(update={"auto_approve_limit": {"USD": 1000}})
    )
    order = await shop.order(amount=5000)
    async with httpx.AsyncClient(base_url=lenient, timeout=30) as http:
        small = await http.post(
            "/v1/refunds", headers=shop.admin, json={"order_no": order["order_no"], "amount": 1000}
        )
        large = await http.post(
            "/v1/refunds", headers=shop.admin, json={"order_no": order["order_no"], "amount": 1001}
        )
        by_customer = await http.post(
            "/v1/refunds",
            headers=shop.customer,
            json={"order_no": order["order_no"], "amount": 500},
        )
    for response in (small, large, by_customer):
        assert response.status_code == 202, response.text
    done = await shop.wait_status(small.json()["refund_no"], "succeeded")
    assert "auto_approved" in events(done)
    assert (await shop.get_refund(large.json()["refund_no"]))["status"] == "pending_approval"
    assert (await shop.get_refund(by_customer.json()["refund_no"]))["status"] == "pending_approval"


async def test_duplicate_and_out_of_order_webhooks_move_the_refund_once(shop: Shop) -> None:
    order = await shop.order(amount=4000)
    refund_no = uid("rf")
    for action in ("duplicate_webhook", "out_of_order_webhooks"):
        await stripe_fault(shop.stack, refund_no, action)
    await shop.refund(order, 4000, refund_no=refund_no)
    await shop.approve(refund_no)
    done = await shop.wait_status(refund_no, "succeeded")
    assert events(done).count("succeeded") == 1
    deliveries: list[int] = []
    for _ in range(200):  # the last duplicates (and the held event) may still be on their way
        sent = await sandbox(
            shop.stack.stripe_url, "GET", "/_sandbox/events", params={"refund_no": refund_no}
        )
        deliveries = [len(record["deliveries"]) for record in sent["data"]]
        if len(deliveries) >= 4 and all(n == 2 for n in deliveries):
            break
        await asyncio.sleep(0.1)
    assert len(deliveries) >= 4 and all(n == 2 for n in deliveries), deliveries
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (4000, "refunded")
    assert (await shop.get_refund(refund_no))["status"] == "succeeded"


async def test_refund_list_filters_and_paginates_with_a_cursor(shop: Shop) -> None:
    order = await shop.order(amount=9000)
    made = [(await shop.refund(order, 1000))["refund_no"] for _ in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {
            "order_no": order["order_no"],
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = await shop.http.get("/v1/refunds", params=params, headers=shop.approver)
        assert page.status_code == 200, page.text
        seen += [r["refund_no"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    pending = await shop.http.get(
        "/v1/refunds",
        headers=shop.ops,
        params={"order_no": order["order_no"], "status": "succeeded"},
    )
    assert pending.json()["items"] == []
    bad = await shop.http.get("/v1/refunds", headers=shop.ops, params={"cursor": "zzz"})
    assert bad.status_code == 422


async def test_ops_can_filter_by_search_attributes_and_query_the_state(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=1200)
    refund = await shop.refund(order, 1200)
    refund_no = refund["refund_no"]
    await shop.approve(refund_no)
    await shop.wait_status(refund_no, "succeeded")
    handle = temporal.get_workflow_handle(f"refund-{refund_no}")
    state = await handle.query(RefundWorkflow.state)
    # The query answers with the refund as its last step committed it: the API's fields.
    assert state.status == RefundStatus.SUCCEEDED and state.row is not None
    assert state.facts is not None and (state.facts.amount, state.facts.order_no) == (
        1200,
        order["order_no"],
    )
    api = await shop.get_refund(refund_no)
    assert (state.row.status, state.row.approved_by, state.row.completed_at) == (
        api["status"],
        api["approved_by"],
        api["completed_at"].replace("Z", "+00:00"),
    )
    query = (
        f'RefundNo = "{refund_no}" AND OrderNo = "{order["order_no"]}" AND '
        f'RefundStatus = "succeeded" AND PaymentChannel = "stripe" AND RefundAmount = 1200'
    )
    found: list[str] = []
    for _ in range(50):  # visibility is eventually consistent
        found = [w.id async for w in temporal.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    assert found == [f"refund-{refund_no}"]
