"""Daily reconciliation sees every disagreement and no single refund stops it, through the real
stack: a failed refund the gateway paid after all, a late failure of a refund created days ago
whose webhook was lost, a WeChat refund settled offline after ops failed it, a lookup the
gateway refuses, and refunds ops already decided after a late failure."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from temporalio.client import Client

from refunds.db.models import ReconciliationFinding, Refund
from refunds.domain.messages import Channel, FindingKind, ReconciliationInput
from tests.e2e.support import (
    Sessions,
    api_with,
    clear_stripe_faults,
    stripe_refunds,
    stripe_request_fault,
    timeline,
)
from tests.e2e.test_gateway_silence_and_abnormal import refund_elsewhere
from tests.e2e.test_reconciliation import findings, reconcile_today
from tests.e2e.test_wechatpay_refunds import fault, resolve
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.reconciliation import ReconciliationWorkflow

DAY = 86_400
# Abnormal refunds that never ask the gateway themselves: only the reconciliation can tell.
DEAF = {"outcome_deadline": timedelta(seconds=4), "abnormal_poll_interval": timedelta(hours=1)}
# Delivery may signal, reopen or ignore a success for a failed refund (the refund workflow's
# rule, not the reconciliation's): the finding is the same whichever it does.
DELIVERED = {"signalled", "reopened", "ignored", "repaired"}


async def requested(shop: Shop, order: dict[str, Any], amount: int, *faults: str) -> str:
    """A refund of `order` with these sandbox faults, requested with DEAF timings, approved."""
    refund_no = uid("rf")
    for action in faults:
        if order["channel"] == "stripe":
            await stripe_fault(shop.stack, refund_no, action)
        else:
            await fault(shop.stack, refund_no=refund_no, action=action)
    async with api_with(shop, **DEAF) as api:
        body = {"order_no": order["order_no"], "amount": amount, "refund_no": refund_no}
        response = await api.post("/v1/refunds", headers=shop.customer, json=body)
        assert response.status_code == 202, response.text
    assert (await shop.approve(refund_no)).status_code == 200
    return refund_no


async def failed_by_ops_while_stripe_still_pays(shop: Shop, amount: int) -> tuple[dict, str]:
    """Stripe never answers, the refund goes abnormal, ops resolve it failed; Stripe's refund
    is still pending and sends no webhook."""
    order = await shop.order(amount=amount)
    refund_no = await requested(shop, order, amount, "pending_forever", "no_webhook")
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert (await resolve(shop, refund_no, "failed")).status_code == 200
    await shop.wait_status(refund_no, "failed", timeout=30)
    return order, refund_no


async def the_finding(sessionmaker: Sessions, rec_id: int, refund_no: str) -> dict[str, Any]:
    [found] = await findings(sessionmaker, rec_id, refund_no)
    return found


async def test_a_failed_refund_stripe_paid_after_all_is_reported_and_delivered(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    (order, paid), (_, pending) = await asyncio.gather(
        failed_by_ops_while_stripe_still_pays(shop, 2100),
        failed_by_ops_while_stripe_still_pays(shop, 1300),
    )
    [at_gateway] = await stripe_refunds(shop, paid)
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed")

    summary = await reconcile_today(shop, temporal)

    found = await the_finding(sessionmaker, summary.reconciliation_id, paid)
    assert (found["kind"], found["subject"]) == (FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE, paid)
    detail = found["detail"]
    assert (detail["ledger_status"], detail["gateway_status"]) == ("failed", "succeeded")
    assert (detail["gateway_amount"], detail["gateway_refund_id"]) == (2100, at_gateway["id"])
    assert detail["action"] in DELIVERED
    # Still pending at Stripe: money that may still go out, reported, nothing to deliver.
    still = await the_finding(sessionmaker, summary.reconciliation_id, pending)
    assert still["kind"] == FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE
    assert (still["detail"]["gateway_status"], still["detail"]["action"]) == (
        "processing",
        "reported",
    )
    assert summary.counts[FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE] >= 2
    # One refund at Stripe, whatever the refund's run does with the news.
    assert len(await stripe_refunds(shop, paid)) == 1


async def test_a_gateway_refund_under_a_rejected_refund_no_is_a_mismatch_never_fixed(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=3000)
    refund = await shop.refund(order, 3000)
    rejected = await shop.http.post(
        f"/v1/refunds/{refund['refund_no']}/reject", json={"reason": "no"}, headers=shop.approver
    )
    assert rejected.status_code == 200, rejected.text
    await refund_elsewhere(
        shop, Channel.STRIPE, refund["refund_no"], order["payment_ref"], 3000, 3000
    )
    summary = await reconcile_today(shop, temporal)
    found = await the_finding(sessionmaker, summary.reconciliation_id, refund["refund_no"])
    assert found["kind"] == FindingKind.MISMATCH
    assert "rejected" in found["detail"]["reason"]
    assert (found["detail"]["action"], found["detail"]["gateway_amount"]) == ("reported", 3000)
    after = await shop.get_refund(refund["refund_no"])
    assert after["status"] == "rejected"
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 0


async def late_failure_of_an_old_refund(shop: Shop) -> tuple[dict[str, Any], str]:
    """A refund that succeeded, created five days ago at Stripe, failed by Stripe today; no
    webhook of it ever reaches us (the workflow heard its success by polling)."""
    order = await shop.order(amount=2700)
    refund_no = await requested(shop, order, 2700, "no_webhook")
    await shop.wait_status(refund_no, "succeeded", timeout=30)
    [at_gateway] = await stripe_refunds(shop, refund_no)
    created = int(at_gateway["created"]) - 5 * DAY
    path = f"/_sandbox/refunds/{at_gateway['id']}"
    await sandbox(shop.stack.stripe_url, "POST", f"{path}/created", json={"created": created})
    await sandbox(shop.stack.stripe_url, "POST", f"{path}/fail", json={"failure_reason": "lost"})
    await asyncio.sleep(0.5)
    assert (await shop.get_refund(refund_no))["status"] == "succeeded"  # nobody told it
    return order, refund_no


async def test_a_late_failure_of_a_refund_created_days_ago_is_found_in_the_failed_events(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order, refund_no = await late_failure_of_an_old_refund(shop)
    summary = await reconcile_today(shop, temporal)
    found = await the_finding(sessionmaker, summary.reconciliation_id, refund_no)
    assert (found["kind"], found["detail"]["action"]) == (FindingKind.GATEWAY_FAILED, "reopened")
    assert (found["detail"]["ledger_status"], found["detail"]["gateway_amount"]) == (
        "succeeded",
        2700,
    )
    reopened = await shop.wait_status(refund_no, "abnormal", timeout=30)
    [late] = timeline(reopened, "gateway_failed_after_success")
    assert late["detail"]["failure_reason"] == "lost"


async def adjudicated_late_failure(
    shop: Shop, temporal: Client, sessionmaker: Sessions, outcome: str
) -> tuple[dict[str, Any], str]:
    order, refund_no = await late_failure_of_an_old_refund(shop)
    await reconcile_today(shop, temporal)
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert (await resolve(shop, refund_no, outcome)).status_code == 200
    await shop.wait_status(refund_no, outcome, timeout=30)
    return order, refund_no


async def assert_reported_adjudicated_and_untouched(
    shop: Shop, temporal: Client, sessionmaker: Sessions, refund_no: str, status: str
) -> None:
    before = await shop.get_refund(refund_no)
    summary = await reconcile_today(shop, temporal)
    found = await the_finding(sessionmaker, summary.reconciliation_id, refund_no)
    assert (found["kind"], found["detail"]["action"]) == (FindingKind.ADJUDICATED, "reported")
    assert (found["detail"]["ledger_status"], found["detail"]["gateway_status"]) == (
        status,
        "failed",
    )
    assert summary.counts[FindingKind.ADJUDICATED] >= 1
    await asyncio.sleep(1)
    after = await shop.get_refund(refund_no)
    assert after["status"] == status
    assert events(after) == events(before)  # not reopened, nothing appended


async def test_a_late_failure_ops_resolved_succeeded_stays_succeeded_at_the_next_run(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order, refund_no = await adjudicated_late_failure(shop, temporal, sessionmaker, "succeeded")
    await assert_reported_adjudicated_and_untouched(
        shop, temporal, sessionmaker, refund_no, "succeeded"
    )
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 2700


async def test_a_late_failure_ops_resolved_failed_stays_failed_at_the_next_run(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order, refund_no = await adjudicated_late_failure(shop, temporal, sessionmaker, "failed")
    await assert_reported_adjudicated_and_untouched(
        shop, temporal, sessionmaker, refund_no, "failed"
    )
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 0


async def wechat_abnormal(shop: Shop, amount: int) -> tuple[dict[str, Any], str]:
    order = await shop.order(channel="wechatpay", amount=amount)
    refund_no = await requested(shop, order, amount, "abnormal", "no_notify")
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    return order, refund_no


async def settle_at_wechat(shop: Shop, refund_no: str) -> None:
    """The merchant paid the ABNORMAL refund offline; WeChat Pay sends no notification."""
    body = {"status": "SUCCESS", "notify": False}
    path = f"/sandbox/refunds/{refund_no}/status"
    await sandbox(shop.stack.wechat_url, "POST", path, json=body)


async def test_a_wechat_refund_failed_days_ago_and_settled_since_is_found_by_the_look_back(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order, refund_no = await wechat_abnormal(shop, 1900)
    assert (await resolve(shop, refund_no, "failed")).status_code == 200
    await shop.wait_status(refund_no, "failed", timeout=30)
    async with sessionmaker.begin() as session:
        # Made two days ago: not in today's window, only within the look-back (3 days).
        await session.execute(
            update(Refund)
            .where(Refund.refund_no == refund_no)
            .values(created_at=Refund.created_at - timedelta(days=2))
        )
    await settle_at_wechat(shop, refund_no)

    summary = await reconcile_today(shop, temporal)

    found = await the_finding(sessionmaker, summary.reconciliation_id, refund_no)
    assert found["kind"] == FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE
    assert (found["detail"]["ledger_status"], found["detail"]["gateway_status"]) == (
        "failed",
        "succeeded",
    )
    assert (found["detail"]["gateway_amount"], found["detail"]["action"] in DELIVERED) == (
        1900,
        True,
    )


async def test_a_refund_whose_lookup_the_gateway_refuses_is_reported_and_the_run_goes_on(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    pairs = await asyncio.gather(wechat_abnormal(shop, 1100), wechat_abnormal(shop, 1200))
    # The open phase walks refunds by id: the refused one is the one made first.
    async with sessionmaker() as session:
        nos = [refund_no for _, refund_no in pairs]
        stmt = select(Refund.refund_no, Refund.id).where(Refund.refund_no.in_(nos))
        ids = dict((await session.execute(stmt)).tuples().all())
    (_, refused), (order, settled) = sorted(pairs, key=lambda pair: ids[pair[1]])
    path = f"/v3/refund/domestic/refunds/{refused}"
    await fault(shop.stack, action="error", method="GET", path_prefix=path, times=1000)
    await settle_at_wechat(shop, settled)
    try:
        summary = await reconcile_today(shop, temporal)
    finally:
        await sandbox(shop.stack.wechat_url, "DELETE", "/sandbox/faults")

    failed = await the_finding(sessionmaker, summary.reconciliation_id, refused)
    assert failed["kind"] == FindingKind.LOOKUP_FAILED
    assert failed["detail"]["error"] == "GatewayPermanentError"
    assert "PARAM_ERROR" in failed["detail"]["message"]
    assert failed["detail"]["ledger_status"] == "abnormal"
    # The refund after it was still asked, and its success delivered.
    found = await the_finding(sessionmaker, summary.reconciliation_id, settled)
    assert (found["kind"], found["detail"]["action"]) == (
        FindingKind.GATEWAY_SUCCEEDED,
        "signalled",
    )
    await shop.wait_status(settled, "succeeded", timeout=30)
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == order["paid_amount"]
    assert summary.counts[FindingKind.LOOKUP_FAILED] >= 1
    assert (await shop.get_refund(refused))["status"] == "abnormal"
    await wait_event(shop, refused, "gateway_abnormal")


async def test_a_phase_whose_gateway_stays_down_is_given_up_reported_and_the_run_finishes(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=2000)
    stray = uid("rf")
    await refund_elsewhere(shop, Channel.STRIPE, stray, order["payment_ref"], 600, 2000)
    # Stripe's Events API answers 500 from now on: the late-failure phase cannot be read.
    spec = {"action": "http_500", "method": "GET", "path_prefix": "/v1/events", "times": 1000}
    await stripe_request_fault(shop, **spec)
    try:
        summary = await temporal.execute_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(day=datetime.now(UTC).date().isoformat(), step_attempts=2),
            id=f"reconciliation-test-{uuid.uuid4().hex[:8]}",
            task_queue=shop.stack.settings.task_queue,
            execution_timeout=timedelta(minutes=3),
        )
    finally:
        await clear_stripe_faults(shop)
    assert summary.failed_phases == ["stripe_failures"]
    assert summary.counts[FindingKind.LOOKUP_FAILED] >= 1
    async with sessionmaker() as session:
        phase = (
            await session.scalars(
                select(ReconciliationFinding).where(
                    ReconciliationFinding.reconciliation_id == summary.reconciliation_id,
                    ReconciliationFinding.subject == "phase:stripe_failures",
                )
            )
        ).one()
    assert (phase.kind, phase.detail["phase"]) == (FindingKind.LOOKUP_FAILED, "stripe_failures")
    # What the phases before it found is kept, and the run closed with its counts.
    found = await the_finding(sessionmaker, summary.reconciliation_id, stray)
    assert found["kind"] == FindingKind.MISMATCH
    run = await shop.http.get(f"/v1/reconciliations/{summary.reconciliation_id}", headers=shop.ops)
    assert run.status_code == 200, run.text
    assert run.json()["finished_at"] and run.json()["counts"]["lookup_failed"] >= 1
