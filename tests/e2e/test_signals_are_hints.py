"""Whoever can reach Temporal is not the gateway and is not a person of the shop.

A `gateway_notification` signal is a hint: money moves by the gateway's word only once the
ledger heard that word from a verified path (a webhook the API verified, the gateway activities'
own calls). People's decisions are taken only when the API signed them, so a Temporal client
cannot approve, reject or resolve, nor pass the four-eyes rule with another actor.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from refunds.domain.decision_signing import decision_signature
from refunds.domain.messages import (
    Decision,
    GatewayNotification,
    GatewayStatus,
    Resolution,
    ResolveOutcome,
)
from tests.e2e.support import stripe_refunds, timeline
from tests.e2e.test_gateway_silence_and_abnormal import HASTY, request_and_approve
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.refund import RefundWorkflow, workflow_id


def refusal_type(err: WorkflowUpdateFailedError) -> str | None:
    cause: BaseException | None = err.cause
    while cause is not None and getattr(cause, "type", None) is None:
        cause = cause.__cause__
    return getattr(cause, "type", None)


async def test_a_temporal_client_without_the_decision_key_cannot_approve_or_reject(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=1200)
    refund = await shop.refund(order, 1200)
    refund_no = refund["refund_no"]
    handle = temporal.get_workflow_handle(workflow_id(refund_no))
    forged = [
        Decision("approver-x", "ok"),  # unsigned
        Decision(
            "approver-x",
            "ok",
            decision_signature("a-guess", "approve", refund_no, "approver-x", "", "ok"),
        ),
    ]
    for decision in forged:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(RefundWorkflow.approve, decision)
        assert refusal_type(refused.value) == "DecisionNotAuthentic"
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(RefundWorkflow.reject, Decision("approver-x", "no"))
    assert refusal_type(refused.value) == "DecisionNotAuthentic"
    # The API's signature binds the actor: the same signature with another actor is refused.
    key = shop.stack.settings.decision_key
    assert key is not None
    mine = decision_signature(key, "approve", refund_no, "approver-x", "", "ok")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(RefundWorkflow.approve, Decision("approver-y", "ok", mine))
    assert refusal_type(refused.value) == "DecisionNotAuthentic"
    still = await shop.get_refund(refund_no)
    assert still["status"] == "pending_approval" and still["approved_by"] is None
    assert (await shop.get_order(order["order_no"]))["reserved_amount"] == 1200
    # The API, which knows who the approver is, still decides.
    assert (await shop.approve(refund_no)).status_code == 200
    await shop.wait_status(refund_no, "succeeded")


async def test_a_forged_failure_signal_never_releases_the_amount_and_the_real_answer_settles_it(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=3300)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await request_and_approve(shop, order, 3300, refund_no)
    await wait_event(shop, refund_no, "gateway_submitted")
    handle = temporal.get_workflow_handle(workflow_id(refund_no))
    await handle.signal(
        RefundWorkflow.gateway_notification,
        GatewayNotification(refund_no, GatewayStatus.FAILED, "re_forged", source="webhook"),
    )
    hint = await wait_event(shop, refund_no, "gateway_answer_unverified")
    assert hint["status"] == "processing"
    [unverified] = timeline(hint, "gateway_answer_unverified")
    assert unverified["detail"]["gateway_status"] == "failed"
    assert (await shop.get_order(order["order_no"]))["reserved_amount"] == 3300
    [at_gateway] = await stripe_refunds(shop, refund_no)
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed")
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert "gateway_failed" not in events(done)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (3300, 3300)


async def test_a_forged_success_signal_never_completes_a_refund_the_gateway_failed(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=2700, points_used=27)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await request_and_approve(shop, order, 2700, refund_no, **HASTY)
    await wait_event(shop, refund_no, "gateway_submitted")
    handle = temporal.get_workflow_handle(workflow_id(refund_no))
    await handle.signal(
        RefundWorkflow.gateway_notification,
        GatewayNotification(refund_no, GatewayStatus.SUCCEEDED, "re_forged", source="webhook"),
    )
    await wait_event(shop, refund_no, "gateway_answer_unverified")
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 0
    [at_gateway] = await stripe_refunds(shop, refund_no)
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/fail")
    failed = await shop.wait_status(refund_no, "failed", timeout=30)
    assert "succeeded" not in events(failed)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"], after["restored_points"]) == (
        0,
        0,
        0,
    )


async def test_a_temporal_client_cannot_resolve_an_abnormal_refund(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order(amount=1600)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await request_and_approve(shop, order, 1600, refund_no, **HASTY)
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    handle = temporal.get_workflow_handle(workflow_id(refund_no))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            RefundWorkflow.resolve, Resolution("ops-x", ResolveOutcome.SUCCEEDED, "paid")
        )
    assert refusal_type(refused.value) == "DecisionNotAuthentic"
    assert (await shop.get_refund(refund_no))["status"] == "abnormal"
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 0
