"""Daily reconciliation through the real stack (issue 9): refunds the gateway settled while the
ledger did not hear, refunds whose workflow was closed under them, gateway refunds that are not
ours, and a reconciliation killed mid-way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from temporalio.client import Client

from refunds.db.models import ReconciliationFinding
from refunds.domain.messages import (
    Channel,
    FindingKind,
    ReconciliationInput,
    ReconciliationSummary,
)
from tests.e2e.support import Sessions, api_with, restorations, stripe_refunds
from tests.e2e.test_gateway_silence_and_abnormal import refund_elsewhere
from tests.e2e.test_restores import lock_waiters, wait_for
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund import workflow_id


async def reconcile_today(
    shop: Shop, temporal: Client, run_id: str | None = None
) -> ReconciliationSummary:
    """One reconciliation of today's window (UTC), run to its end."""
    return await temporal.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(day=datetime.now(UTC).date().isoformat(), time_zone="UTC"),
        id=run_id or f"reconciliation-test-{uuid.uuid4().hex[:8]}",
        task_queue=shop.stack.settings.task_queue,
        execution_timeout=timedelta(minutes=3),
    )


async def findings(sessionmaker: Sessions, rec_id: int, refund_no: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        stmt = (
            select(ReconciliationFinding)
            .where(
                ReconciliationFinding.reconciliation_id == rec_id,
                ReconciliationFinding.refund_no == refund_no,
            )
            .order_by(ReconciliationFinding.id)
        )
        rows = (await session.scalars(stmt)).all()
    return [{"kind": r.kind, "subject": r.subject, "detail": r.detail} for r in rows]


async def terminated_mid_processing(
    shop: Shop, temporal: Client, amount: int, *faults: str
) -> tuple[dict[str, Any], str]:
    """A refund at the gateway whose workflow ops terminated from the Temporal UI (the ledger
    says processing, nobody carries it); then the gateway pays it back."""
    order = await shop.order(amount=amount)
    refund_no = uid("rf")
    for fault in ("pending_forever", *faults):
        await stripe_fault(shop.stack, refund_no, fault)
    await shop.refund(order, amount, refund_no=refund_no)
    assert (await shop.approve(refund_no)).status_code == 200
    await wait_event(shop, refund_no, "gateway_submitted")
    await temporal.get_workflow_handle(workflow_id(refund_no)).terminate("by hand, from the UI")
    [at_gateway] = await stripe_refunds(shop, refund_no)
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed")
    return order, refund_no


async def assert_repaired_and_paid_once(
    shop: Shop, sessionmaker: Sessions, order: dict[str, Any], refund_no: str
) -> None:
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert events(done).count("repaired") == 1
    assert "gateway_submitted" in events(done)
    assert len(await stripe_refunds(shop, refund_no)) == 1
    assert len(await restorations(sessionmaker, refund_no)) == 3
    after = await shop.get_order(order["order_no"])
    amount = order["paid_amount"]
    assert (after["refunded_amount"], after["reserved_amount"]) == (amount, amount)


async def test_refund_whose_workflow_was_terminated_mid_processing_is_repaired_and_succeeds(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    # No webhook: only the reconciliation can tell.
    order, refund_no = await terminated_mid_processing(shop, temporal, 2600, "no_webhook")
    await asyncio.sleep(1)
    assert (await shop.get_refund(refund_no))["status"] == "processing"
    summary = await reconcile_today(shop, temporal)
    kinds = {f["kind"] for f in await findings(sessionmaker, summary.reconciliation_id, refund_no)}
    assert {FindingKind.REPAIRED, FindingKind.GATEWAY_SUCCEEDED} <= kinds
    await assert_repaired_and_paid_once(shop, sessionmaker, order, refund_no)


async def test_webhook_for_a_refund_whose_workflow_was_terminated_repairs_it_at_once(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    # The webhook finds no open run: a repair run takes the refund and finishes it.
    order, refund_no = await terminated_mid_processing(shop, temporal, 2200)
    await assert_repaired_and_paid_once(shop, sessionmaker, order, refund_no)


async def test_success_whose_webhook_was_lost_with_polling_off_is_found_and_finished(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=1500)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "no_webhook")
    # Polling far away: only the reconciliation can bring the news.
    async with api_with(shop, outcome_poll_interval=timedelta(hours=1)) as api:
        response = await api.post(
            "/v1/refunds",
            headers=shop.customer,
            json={"order_no": order["order_no"], "amount": 1500, "refund_no": refund_no},
        )
        assert response.status_code == 202, response.text
    assert (await shop.approve(refund_no)).status_code == 200
    await wait_event(shop, refund_no, "gateway_submitted")
    await asyncio.sleep(1.5)  # the sandbox succeeds it after 0.3 s, silently
    assert (await shop.get_refund(refund_no))["status"] == "processing"

    summary = await reconcile_today(shop, temporal)
    [found] = await findings(sessionmaker, summary.reconciliation_id, refund_no)
    assert (found["kind"], found["detail"]["action"]) == ("gateway_succeeded", "signalled")
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert "repaired" not in events(done)
    assert len(await stripe_refunds(shop, refund_no)) == 1
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 1500


async def test_gateway_refund_with_our_refund_no_and_no_row_is_reported_never_fixed(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=4000)
    stray = uid("rf")
    await refund_elsewhere(shop, Channel.STRIPE, stray, order["payment_ref"], 700, 4000)
    summary = await reconcile_today(shop, temporal)
    [found] = await findings(sessionmaker, summary.reconciliation_id, stray)
    assert found["kind"] == "mismatch"
    assert "the ledger has none" in found["detail"]["reason"]
    assert summary.counts["mismatch"] >= 1
    missing = await shop.http.get(f"/v1/refunds/{stray}", headers=shop.admin)
    assert missing.status_code == 404
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (0, 0)
    # Ops read it in the API.
    listed = await shop.http.get(
        f"/v1/reconciliations/{summary.reconciliation_id}", headers=shop.ops
    )
    assert listed.status_code == 200, listed.text
    assert stray in listed.text


async def test_reconciliation_killed_mid_way_resumes_and_reports_each_finding_once(
    shop: Shop, temporal: Client, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=6000)
    strays = [uid("rf") for _ in range(3)]
    for stray in strays:
        await refund_elsewhere(shop, Channel.STRIPE, stray, order["payment_ref"], 500, 6000)
    run_id = f"reconciliation-test-{uuid.uuid4().hex[:8]}"
    async with sessionmaker() as session, session.begin():
        # Findings wait for our lock: the step is in flight, mid-page, when its worker dies.
        await session.execute(text("LOCK TABLE reconciliation_findings IN EXCLUSIVE MODE"))
        running = asyncio.create_task(reconcile_today(shop, temporal, run_id))
        await wait_for(
            lambda: lock_waiters(sessionmaker, "reconciliation_findings"), 30, "a blocked step"
        )
        shop.stack.kill_worker()
    shop.stack.worker.start()
    summary = await asyncio.wait_for(running, 120)
    for stray in strays:
        kinds = [f["kind"] for f in await findings(sessionmaker, summary.reconciliation_id, stray)]
        assert kinds == ["mismatch"], (stray, kinds)
    assert summary.counts["mismatch"] >= 3
    attempts = [
        e.activity_task_started_event_attributes.attempt
        async for e in temporal.get_workflow_handle(run_id).fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(attempts) >= 2, attempts  # a step really ran again after the kill
