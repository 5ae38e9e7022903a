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
    wechat_refunds,
)
from tests.e2e.test_gateway_silence_and_abnormal import refund_elsewhere
from tests.e2e.test_reconciliation import findings, reconcile_today
from tests.e2e.test_wechatpay_refunds import fault, resolve
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.reconciliation import ReconciliationWorkflow

DAY = 86_400
# Abnormal refunds that never ask the gateway themselves: only the reconciliation can tell.
DEAF = {"outcome_deadline": timedelta(seconds=4), "abnormal_poll_interval": timedelta(hours=1)}


async def requested(
    shop: Shop, order: dict[str, Any], amount: int, *faults: str, refund_no: str = ""
) -> str:
    """A refund of `order` with these sandbox faults, requested with DEAF timings, approved."""
    refund_no = refund_no or uid("rf")
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


async def failed_by_ops_before_the_create_landed(
    shop: Shop, order: dict[str, Any], amount: int, *faults: str, refund_no: str = ""
) -> str:
    """The create is held in the network past the outcome deadline (its fault armed by the
    caller); ops, asking the gateway and finding nothing, resolve it failed; then the create
    lands at the gateway, which tells us nothing (no webhook)."""
    refund_no = await requested(shop, order, amount, *faults, refund_no=refund_no)
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "gateway_unreachable" in events(abnormal)
    assert (await resolve(shop, refund_no, "failed")).status_code == 200
    await shop.wait_status(refund_no, "failed", timeout=30)
    return refund_no


async def failed_by_ops_while_stripe_still_pays(
    shop: Shop, amount: int, outcome: str
) -> tuple[dict, str]:
    """A Stripe refund the ledger failed that Stripe then created and took to `outcome`
    (`succeeded`, or `pending` for good)."""
    order = await shop.order(amount=amount)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "timeout", delay=8)
    faults = ["no_webhook"] + (["pending_forever"] if outcome == "pending" else [])
    refund_no = await failed_by_ops_before_the_create_landed(
        shop, order, amount, *faults, refund_no=refund_no
    )
    for _ in range(150):
        at_gateway = await stripe_refunds(shop, refund_no)
        if at_gateway and at_gateway[0]["status"] == outcome:
            return order, refund_no
        await asyncio.sleep(0.2)
    raise AssertionError(f"{refund_no} never reached {outcome} at Stripe: {at_gateway}")


async def the_finding(sessionmaker: Sessions, rec_id: int, refund_no: str) -> dict[str, Any]:
    [found] = await findings(sessionmaker, rec_id, refund_no)
    return found


async def test_a_failed_refund_stripe_paid_after_all_is_reported_and_delivered(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    (order, paid), (_, pending) = await asyncio.gather(
        failed_by_ops_while_stripe_still_pays(shop, 2100, "succeeded"),
        failed_by_ops_while_stripe_still_pays(shop, 1300, "pending"),
    )
    [at_gateway] = await stripe_refunds(shop, paid)

    summary = await reconcile_today(shop, temporal)

    found = await the_finding(sessionmaker, summary.reconciliation_id, paid)
    assert (found["kind"], found["subject"]) == (FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE, paid)
    detail = found["detail"]
    assert (detail["ledger_status"], detail["gateway_status"]) == ("failed", "succeeded")
    assert (detail["gateway_amount"], detail["gateway_refund_id"]) == (2100, at_gateway["id"])
    assert detail["action"] == "reopened"
    # The money went out: the refund reopens and the gateway's word settles it, counted.
    done = await shop.wait_status(paid, "succeeded", timeout=30)
    assert "gateway_succeeded_after_failure" in events(done)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (2100, 2100)
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


async def wechat_failed_by_ops_then_paid(shop: Shop, amount: int) -> tuple[dict[str, Any], str]:
    """As `failed_by_ops_while_stripe_still_pays`, at WeChat Pay: the create held past the
    deadline, ops fail it, then it lands and WeChat pays it without notifying."""
    order = await shop.order(channel="wechatpay", amount=amount)
    path = "/v3/refund/domestic/refunds"
    await fault(shop.stack, action="timeout", method="POST", path_prefix=path, delay=8)
    refund_no = await failed_by_ops_before_the_create_landed(shop, order, amount, "no_notify")
    for _ in range(150):
        at_gateway = await wechat_refunds(shop, refund_no)
        if at_gateway and at_gateway[0]["status"] == "SUCCESS":
            return order, refund_no
        await asyncio.sleep(0.2)
    raise AssertionError(f"{refund_no} never succeeded at WeChat Pay: {at_gateway}")


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
    order, refund_no = await wechat_failed_by_ops_then_paid(shop, 1900)
    async with sessionmaker.begin() as session:
        # Made two days ago: not in today's window, only within the look-back (3 days).
        await session.execute(
            update(Refund)
            .where(Refund.refund_no == refund_no)
            .values(created_at=Refund.created_at - timedelta(days=2))
        )

    summary = await reconcile_today(shop, temporal)

    found = await the_finding(sessionmaker, summary.reconciliation_id, refund_no)
    assert found["kind"] == FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE
    assert (found["detail"]["ledger_status"], found["detail"]["gateway_status"]) == (
        "failed",
        "succeeded",
    )
    assert (found["detail"]["gateway_amount"], found["detail"]["action"]) == (1900, "reopened")
    await shop.wait_status(refund_no, "succeeded", timeout=30)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (1900, 1900)


async def test_a_refund_whose_lookup_the_gateway_refuses_is_reported_and_the_run_goes_on(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    pairs = await asyncio.gather(wechat_abnormal(shop, 1100), wechat_abnormal(shop, 1200))
    # The open phase walks refunds by id: the refused one is the one made first.
    async with sessionmaker() as session:
        nos = [refund_no for _, refund_no in pairs]
        stmt = select(Refund.refund_no, Refund.id).where(Refund.refund_no.in_(nos))
        ids = {row[0]: row[1] for row in (await session.execute(stmt)).all()}
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
