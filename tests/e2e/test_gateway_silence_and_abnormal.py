"""When the gateway is silent, failing, or shows a refund that is not ours (issue 8 §1, §3, §4).

A failed lookup is no news and the outcome deadline always applies; an abnormal refund keeps
listening and a gateway success finishes it; ops cannot resolve `failed` what the gateway paid;
a refund found under our refund_no with another amount or payment is abnormal, never succeeded.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus

from refunds.domain.messages import Channel, GatewayRefundInput
from refunds.gateways.stripe_gateway import StripeGateway
from refunds.gateways.wechatpay_gateway import WeChatPayGateway
from tests.e2e.support import (
    Sessions,
    api_with,
    clear_stripe_faults,
    order_locked,
    restorations,
    stripe_refunds,
    stripe_request_fault,
    timeline,
    wechat_refunds,
)
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.refund import workflow_id

HASTY = {"outcome_deadline": timedelta(seconds=4), "abnormal_poll_interval": timedelta(seconds=1)}


async def request_and_approve(
    shop: Shop, order: dict, amount: int, refund_no: str, **timings: object
) -> None:
    async with api_with(shop, **timings) as api:
        response = await api.post(
            "/v1/refunds",
            headers=shop.customer,
            json={"order_no": order["order_no"], "amount": amount, "refund_no": refund_no},
        )
        assert response.status_code == 202, response.text
    assert (await shop.approve(refund_no)).status_code == 200


async def refund_elsewhere(
    shop: Shop, channel: Channel, refund_no: str, payment_ref: str, amount: int, total: int
) -> None:
    """A refund made at the gateway by another system of the same merchant, under refund_no."""
    settings = shop.stack.settings
    gateway = (
        StripeGateway.from_settings(settings)
        if channel == Channel.STRIPE
        else WeChatPayGateway.from_settings(settings)
    )
    currency = "USD" if channel == Channel.STRIPE else "CNY"
    await gateway.create_refund(
        GatewayRefundInput(refund_no, "elsewhere", channel, payment_ref, amount, currency, total)
    )


async def test_lookups_failing_without_end_are_no_news_and_the_deadline_still_makes_it_abnormal(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=2500)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await stripe_fault(shop.stack, refund_no, "no_webhook")
    await request_and_approve(shop, order, 2500, refund_no, **HASTY)
    await wait_event(shop, refund_no, "gateway_submitted")
    # From now on every lookup of the payment's refunds is a 500.
    await stripe_request_fault(
        shop, action="http_500", method="GET", path_prefix="/v1/refunds", times=10_000
    )
    try:
        abnormal = await shop.wait_status(refund_no, "abnormal", timeout=40)
        assert "outcome_deadline_passed" in events(abnormal)
        assert timeline(abnormal, "gateway_lookup_failed"), events(abnormal)
        handle = temporal.get_workflow_handle(workflow_id(refund_no))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert (await shop.get_order(order["order_no"]))["reserved_amount"] == 2500
    finally:
        await clear_stripe_faults(shop)
    # The money goes back at last, with no webhook: the abnormal refund's own polls find it.
    [at_gateway] = await stripe_refunds(shop, refund_no)
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed")
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    polled = [e["detail"]["gateway_status"] for e in timeline(done, "gateway_polled")]
    assert polled[-1] == "succeeded"
    assert len(await restorations(sessionmaker, refund_no)) == 3
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (2500, 2500)
    assert len(await stripe_refunds(shop, refund_no)) == 1


async def test_gateway_success_reaching_an_abnormal_refund_by_webhook_finishes_it_and_ops_cannot_fail_it(  # noqa: E501
    shop: Shop, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=1800)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    # Slow abnormal polling: only the webhook can bring the news in this test.
    await request_and_approve(
        shop, order, 1800, refund_no, **{**HASTY, "abnormal_poll_interval": timedelta(hours=1)}
    )
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    [at_gateway] = await stripe_refunds(shop, refund_no)
    async with order_locked(sessionmaker, order["order_no"]):
        # The restores wait on our lock, so the refund is still abnormal when ops answer.
        await sandbox(
            shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed"
        )
        heard = await wait_event(shop, refund_no, "gateway_notification")
        while not any(
            e["detail"]["gateway_status"] == "succeeded"
            for e in timeline(heard, "gateway_notification")
        ):
            await asyncio.sleep(0.2)
            heard = await shop.get_refund(refund_no)
        assert heard["status"] == "abnormal"
        refused = await shop.http.post(
            f"/v1/refunds/{refund_no}/resolve", headers=shop.ops, json={"outcome": "failed"}
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "gateway_reported_success"
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert "resolved_failed" not in events(done)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["refundable_amount"]) == (1800, 0)
    assert len(await restorations(sessionmaker, refund_no)) == 3


async def test_stripe_refund_found_under_our_refund_no_with_another_amount_is_abnormal_never_succeeded(  # noqa: E501
    shop: Shop,
) -> None:
    order = await shop.order(amount=5000)
    refund_no = uid("rf")
    # Another system on the same account refunded 1000 of this payment under our refund_no.
    await refund_elsewhere(shop, Channel.STRIPE, refund_no, order["payment_ref"], 1000, 5000)
    await request_and_approve(shop, order, 3000, refund_no)
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    [mismatch] = timeline(abnormal, "gateway_refund_mismatch")
    assert "amount 1000 at the gateway, 3000 in our ledger" in mismatch["detail"]["reason"]
    await asyncio.sleep(3)  # the foreign refund succeeds at the sandbox and notifies us
    still = await shop.get_refund(refund_no)
    assert still["status"] == "abnormal"
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (0, 3000)
    assert [r["amount"] for r in await stripe_refunds(shop, refund_no)] == [1000]


async def test_wechatpay_refund_found_under_our_refund_no_for_another_payment_is_abnormal(
    shop: Shop,
) -> None:
    ours = await shop.order(channel="wechatpay", amount=4000)
    theirs = await shop.order(channel="wechatpay", amount=4000)
    refund_no = uid("rf")
    await refund_elsewhere(shop, Channel.WECHATPAY, refund_no, theirs["payment_ref"], 4000, 4000)
    await request_and_approve(shop, ours, 4000, refund_no)
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    [mismatch, *_] = timeline(abnormal, "gateway_refund_mismatch")
    assert f"payment {theirs['payment_ref']} at the gateway" in mismatch["detail"]["reason"]
    await asyncio.sleep(2)
    assert (await shop.get_refund(refund_no))["status"] == "abnormal"
    after = await shop.get_order(ours["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (0, 4000)
    [only] = await wechat_refunds(shop, refund_no)
    assert only["transaction_id"] == theirs["payment_ref"]


async def test_wechatpay_lookups_refused_for_good_never_fail_the_workflow(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    """A key change makes every lookup a refusal (400 PARAM_ERROR here): the poll treats it as
    no news, the deadline makes the refund abnormal, and once lookups work again its own poll
    finds the success (no notification ever comes)."""
    order = await shop.order(channel="wechatpay", amount=3600)
    refund_no = uid("rf")
    await sandbox(
        shop.stack.wechat_url,
        "POST",
        "/sandbox/faults",
        json={"refund_no": refund_no, "action": "no_notify"},
    )
    await request_and_approve(shop, order, 3600, refund_no, **HASTY)
    await wait_event(shop, refund_no, "gateway_submitted")
    await sandbox(
        shop.stack.wechat_url,
        "POST",
        "/sandbox/faults",
        json={
            "action": "error",
            "method": "GET",
            "path_prefix": "/v3/refund/domestic/refunds/",
            "status": 400,
            "code": "PARAM_ERROR",
            "times": 10_000,
        },
    )
    try:
        abnormal = await shop.wait_status(refund_no, "abnormal", timeout=40)
        failures = [e["detail"]["error"] for e in timeline(abnormal, "gateway_lookup_failed")]
        assert failures and all("PARAM_ERROR" in f for f in failures), failures
        handle = temporal.get_workflow_handle(workflow_id(refund_no))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    finally:
        await sandbox(shop.stack.wechat_url, "DELETE", "/sandbox/faults")
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert timeline(done, "gateway_polled")[-1]["detail"]["gateway_status"] == "succeeded"
    assert len(await restorations(sessionmaker, refund_no)) == 3
    assert len(await wechat_refunds(shop, refund_no)) == 1
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (3600, "refunded")
