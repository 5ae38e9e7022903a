"""Record the stored histories of the `Refund` workflow type (issue 11), of
`WebhookEndpointDelivery` (issue 13) and of `PaymentCheck` for tests/workflows/test_replay.py:
`python -m tests.workflows.record_histories [PATH ...]` (all paths by default).

It starts its own stack as the e2e tests do (PostgreSQL, Temporal dev server, both sandboxes,
the API, the worker process), drives each path through HTTP and writes the history of the run
that carried it to `histories/refund_<path>.json` (a `Refund` run) or `histories/<path>.json`
(a run of another type, see OTHER_TYPES). Record a path once, when it ships; never
re-record one to make a replay pass: a history that no longer replays is a running refund the
change would break. So a path whose history is stored is skipped unless `--force` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory

from refunds.db.migrate import upgrade
from refunds.domain.messages import (
    Channel,
    GatewayNotification,
    GatewayStatus,
    ReconciliationInput,
)
from refunds.embedded.ports import free_port
from refunds.embedded.postgres import EmbeddedPostgres
from refunds.embedded.temporal import EmbeddedTemporal
from refunds.runtime.payload_codec import EncryptionCodec, transform_payloads
from refunds.runtime.temporal_client import connect
from refunds.settings import Settings
from tests.e2e.support import (
    api_with,
    clear_stripe_faults,
    stripe_refunds,
    stripe_request_fault,
)
from tests.e2e.test_gateway_silence_and_abnormal import refund_elsewhere
from tests.e2e.test_gateway_word_is_final import foreign_stripe_refund
from tests.e2e.test_reconciliation import reconcile_today
from tests.e2e.webhook_receiver import running_receiver
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from tests.stack import Stack, start_stack
from workflows.payment_check import payment_check_id
from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund import RefundWorkflow, workflow_id
from workflows.webhook_delivery import workflow_id as endpoint_workflow_id

HISTORIES = Path(__file__).parent / "histories"
WORKFLOW_TYPE = "Refund"
# Paths that record a run of another type: stored under their own name, not `refund_<path>`.
OTHER_TYPES = {
    "webhook_endpoint_delivered_then_deleted": "WebhookEndpointDelivery",
    "reconciliation_late_failure_reopened": "ReconciliationWorkflow",
    "reconciliation_phase_given_up": "ReconciliationWorkflow",
    "payment_check_paid": "PaymentCheck",
    "payment_check_gateway_unavailable": "PaymentCheck",
}
# Whatever the gateways or the API could leak into a payload: keys, tokens, PEM blocks.
SECRET_SHAPES = re.compile(r"sk_(test|live)_|rk_(test|live)_|whsec_|Bearer |-----BEGIN")

Handle = WorkflowHandle[Any, Any]
Drive = Callable[["Recorder"], Awaitable[Handle]]


class Recorder:
    """One shop on the stack and a Temporal client: what each path drives."""

    def __init__(self, shop: Shop, temporal: Client) -> None:
        self.shop = shop
        self.temporal = temporal
        # Secrets a path is handed on the way (a webhook endpoint's signing secret): the
        # history must hold none of them, as it holds none of the stack's.
        self.secrets: list[str] = []

    async def request(self, order: dict[str, Any], amount: int, *faults: str) -> str:
        """A customer's refund with the Stripe faults armed for it; its refund_no."""
        refund_no = uid("rf")
        for action in faults:
            await stripe_fault(self.shop.stack, refund_no, action)
        await self.shop.refund(order, amount, refund_no=refund_no)
        return refund_no

    async def approve(self, refund_no: str) -> None:
        response = await self.shop.approve(refund_no)
        assert response.status_code == 200, response.text

    async def resolve(self, refund_no: str, outcome: str) -> None:
        response = await self.shop.http.post(
            f"/v1/refunds/{refund_no}/resolve",
            json={"outcome": outcome, "note": f"ops checked: {outcome}"},
            headers=self.shop.ops,
        )
        assert response.status_code == 200, response.text

    async def stripe_move(self, refund_no: str, to: str) -> None:
        """Move the refund at the Stripe sandbox (`succeed` or `fail`); its webhooks follow."""
        [at_gateway] = await stripe_refunds(self.shop, refund_no)
        await sandbox(
            self.shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/{to}"
        )

    async def heard(self, refund_no: str, gateway_status: str) -> None:
        """Wait until the API has taken in a notification saying `gateway_status`."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            refund = await self.shop.get_refund(refund_no)
            notes = [e for e in refund["timeline"] if e["event"] == "gateway_notification"]
            if any(e["detail"].get("gateway_status") == gateway_status for e in notes):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{refund_no}: no {gateway_status} notification")

    async def all_delivered(self, refund_no: str, endpoint_id: int) -> None:
        """Wait until the endpoint's delivery of each of the refund's events is delivered."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = await self.shop.http.get(
                "/v1/events", params={"refund_no": refund_no}, headers=self.shop.ops
            )
            assert response.status_code == 200, response.text
            states = [
                d["state"]
                for event in response.json()["items"]
                for d in event["deliveries"]
                if d["endpoint_id"] == endpoint_id
            ]
            if states and all(state == "delivered" for state in states):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{refund_no}: events not all delivered to endpoint {endpoint_id}")

    async def latest_run(self, refund_no: str) -> Handle:
        """The refund's newest run, pinned by its run id."""
        described = await self.temporal.get_workflow_handle(workflow_id(refund_no)).describe()
        return self.temporal.get_workflow_handle(workflow_id(refund_no), run_id=described.run_id)

    async def closed_run(self, refund_no: str) -> Handle:
        """The newest run, once closed: a history recorded from its end."""
        return await closed(await self.latest_run(refund_no), timeout=30)


async def closed(handle: Handle, timeout: float) -> Handle:
    """The run, once closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return handle
        await asyncio.sleep(0.2)
    raise AssertionError(f"{handle.id}: run {handle.run_id} still running")


# ---- the paths ------------------------------------------------------------------------------


async def succeeded_stripe(rec: Recorder) -> Handle:
    """apply → approve → gateway → webhook → complete."""
    order = await rec.shop.order(amount=10000, points_used=100, coupon_code=uid("cpn"))
    refund_no = await rec.request(order, 10000)
    await rec.approve(refund_no)
    done = await rec.shop.wait_status(refund_no, "succeeded")
    assert "approved" in events(done) and "auto_approved" not in events(done)
    return await rec.closed_run(refund_no)


async def succeeded_wechatpay(rec: Recorder) -> Handle:
    order = await rec.shop.order("wechatpay", amount=5000)
    refund_no = await rec.request(order, 5000)
    await rec.approve(refund_no)
    await rec.shop.wait_status(refund_no, "succeeded")
    return await rec.closed_run(refund_no)


async def rejected(rec: Recorder) -> Handle:
    order = await rec.shop.order(amount=5000)
    refund_no = await rec.request(order, 5000)
    response = await rec.shop.http.post(
        f"/v1/refunds/{refund_no}/reject", json={"reason": "used item"}, headers=rec.shop.approver
    )
    assert response.status_code == 200, response.text
    return await rec.closed_run(refund_no)


async def expired(rec: Recorder) -> Handle:
    order = await rec.shop.order(amount=3000)
    refund_no = uid("rf")
    async with api_with(rec.shop, approval_timeout=timedelta(seconds=1)) as api:
        body = {"order_no": order["order_no"], "amount": 3000, "refund_no": refund_no}
        response = await api.post("/v1/refunds", json=body, headers=rec.shop.customer)
        assert response.status_code == 202, response.text
    await rec.shop.wait_status(refund_no, "expired", timeout=20)
    return await rec.closed_run(refund_no)


async def apply_refused_over_refundable(rec: Recorder) -> Handle:
    order = await rec.shop.order(amount=3000)
    refund_no = uid("rf")
    response = await rec.shop.request_refund(order, 3001, refund_no=refund_no)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "refund_exceeds_refundable"
    return await rec.closed_run(refund_no)


async def auto_approved(rec: Recorder) -> Handle:
    """An admin refund under REFUNDS_AUTO_APPROVE_LIMIT: no approver."""
    order = await rec.shop.order(amount=5000)
    refund_no = uid("rf")
    async with api_with(rec.shop, auto_approve_limit={"USD": 1000}) as api:
        body = {"order_no": order["order_no"], "amount": 1000, "refund_no": refund_no}
        response = await api.post("/v1/refunds", json=body, headers=rec.shop.admin)
        assert response.status_code == 202, response.text
    done = await rec.shop.wait_status(refund_no, "succeeded")
    assert "auto_approved" in events(done)
    return await rec.closed_run(refund_no)


async def abnormal_resolved_succeeded(rec: Recorder) -> Handle:
    """No terminal answer by the outcome deadline: abnormal, then ops resolve it succeeded."""
    order = await rec.shop.order(amount=2000)
    refund_no = uid("rf")
    await stripe_fault(rec.shop.stack, refund_no, "pending_forever")
    async with api_with(rec.shop, outcome_deadline=timedelta(seconds=3)) as api:
        body = {"order_no": order["order_no"], "amount": 2000, "refund_no": refund_no}
        response = await api.post("/v1/refunds", json=body, headers=rec.shop.customer)
        assert response.status_code == 202, response.text
    await rec.approve(refund_no)
    abnormal = await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "outcome_deadline_passed" in events(abnormal)
    await rec.resolve(refund_no, "succeeded")
    await rec.shop.wait_status(refund_no, "succeeded")
    return await rec.closed_run(refund_no)


async def settled_by_poll(rec: Recorder) -> Handle:
    """The gateway never notifies (Stripe `no_webhook`): a poll finds the success."""
    order = await rec.shop.order(amount=2500)
    refund_no = await rec.request(order, 2500, "no_webhook")
    await rec.approve(refund_no)
    done = await rec.shop.wait_status(refund_no, "succeeded", timeout=30)
    [succeeded] = [e for e in done["timeline"] if e["event"] == "succeeded"]
    assert succeeded["detail"]["via"] == "poll"
    return await rec.closed_run(refund_no)


async def late_failure_resolved_failed(rec: Recorder) -> Handle:
    """The success and its late failure both reach the refund's own run before it finishes
    (its worker was away): it succeeds, restores included, then turns abnormal for ops, who
    resolve it failed and the restores are taken back, all in the one run."""
    order = await rec.shop.order(amount=3000, points_used=90, coupon_code=uid("cpn"))
    refund_no = await rec.request(order, 3000, "pending_forever")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    stack = rec.shop.stack
    stack.worker.stop()
    try:
        await rec.stripe_move(refund_no, "succeed")
        await rec.heard(refund_no, "succeeded")
        await rec.stripe_move(refund_no, "fail")
        await rec.heard(refund_no, "failed")
    finally:
        stack.worker.start()
    abnormal = await rec.shop.wait_status(refund_no, "abnormal", timeout=60)
    assert "gateway_failed_after_success" in events(abnormal)
    first = await rec.latest_run(refund_no)
    await rec.resolve(refund_no, "failed")
    await rec.shop.wait_status(refund_no, "failed")
    await wait_event(rec.shop, refund_no, "restores_reversed")
    handle = await rec.closed_run(refund_no)
    assert handle.run_id == first.run_id, "the late failure should reach the first run"
    return handle


async def _reopened(rec: Recorder, outcome: str) -> Handle:
    """A late failure for a refund whose run has finished: the webhook starts a reopening run,
    which ops resolve `outcome`."""
    order = await rec.shop.order(amount=3000, points_used=90, coupon_code=uid("cpn"))
    refund_no = await rec.request(order, 3000, "pending_forever")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    await rec.stripe_move(refund_no, "succeed")
    await rec.shop.wait_status(refund_no, "succeeded")
    first = await rec.closed_run(refund_no)
    await rec.stripe_move(refund_no, "fail")
    await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    reopening = await rec.latest_run(refund_no)
    assert reopening.run_id != first.run_id, "the late failure should start a new run"
    await rec.resolve(refund_no, outcome)
    await rec.shop.wait_status(refund_no, outcome)
    return await rec.closed_run(refund_no)


async def reopened_resolved_failed(rec: Recorder) -> Handle:
    return await _reopened(rec, "failed")


async def reopened_resolved_succeeded(rec: Recorder) -> Handle:
    return await _reopened(rec, "succeeded")


async def mismatch_resolved_failed(rec: Recorder) -> Handle:
    """A refund at Stripe under our refund_no for another amount: abnormal, never succeeded."""
    order = await rec.shop.order(amount=5000)
    refund_no = uid("rf")
    await refund_elsewhere(rec.shop, Channel.STRIPE, refund_no, order["payment_ref"], 1000, 5000)
    await rec.shop.refund(order, 3000, refund_no=refund_no)
    await rec.approve(refund_no)
    abnormal = await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "gateway_refund_mismatch" in events(abnormal)
    await rec.resolve(refund_no, "failed")
    await rec.shop.wait_status(refund_no, "failed")
    return await rec.closed_run(refund_no)


async def repaired_processing_succeeded(rec: Recorder) -> Handle:
    """Its run terminated from the UI mid-processing; the gateway pays it back silently; the
    reconciliation starts a repair run, which finds the success and finishes the refund."""
    order = await rec.shop.order(amount=2600)
    refund_no = await rec.request(order, 2600, "pending_forever", "no_webhook")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    terminated = await rec.latest_run(refund_no)
    await terminated.terminate("by hand, from the UI")
    await rec.stripe_move(refund_no, "succeed")
    await reconcile_today(rec.shop, rec.temporal)
    done = await rec.shop.wait_status(refund_no, "succeeded", timeout=30)
    assert events(done).count("repaired") == 1
    handle = await rec.closed_run(refund_no)
    assert handle.run_id != terminated.run_id
    return handle


async def webhook_endpoint_delivered_then_deleted(rec: Recorder) -> Handle:
    """Issue 13: an endpoint hears a refund's events (the very first try answered 500, so one
    delivery is retried), then is deleted: its delivery workflow sees it gone and ends."""
    shop = rec.shop
    with running_receiver(fail_first_arrivals=1) as receiver:
        body = {"url": receiver.url, "event_types": ["*"]}
        response = await shop.http.post("/v1/webhook_endpoints", json=body, headers=shop.admin)
        assert response.status_code == 201, response.text
        endpoint = response.json()
        rec.secrets.append(endpoint["secret"])
        receiver.secrets.append(endpoint["secret"])
        order = await shop.order(amount=4000)
        refund_no = await rec.request(order, 4000)
        await rec.approve(refund_no)
        await shop.wait_status(refund_no, "succeeded")
        await rec.all_delivered(refund_no, endpoint["id"])
        assert [a.answered for a in receiver.of(refund_no)] == [500] + [200] * 3
        handle = rec.temporal.get_workflow_handle(endpoint_workflow_id(endpoint["id"]))
        run_id = (await handle.describe()).run_id
        response = await shop.http.delete(
            f"/v1/webhook_endpoints/{endpoint['id']}", headers=shop.admin
        )
        assert response.status_code == 204, response.text
    # Nothing wakes it on a delete: its next sweep finds the endpoint gone.
    run = rec.temporal.get_workflow_handle(endpoint_workflow_id(endpoint["id"]), run_id=run_id)
    return await closed(run, timeout=60)


async def _hasty_abnormal(
    rec: Recorder, amount: int, deadline_seconds: int, *faults: str, **fault_args: Any
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A refund requested through an API whose refunds give up on the gateway after
    `deadline_seconds` and poll every second once abnormal, with these Stripe faults armed;
    approved and waited for until abnormal: (order, refund_no, the abnormal refund)."""
    order = await rec.shop.order(amount=amount)
    refund_no = uid("rf")
    for action in faults:
        await stripe_fault(rec.shop.stack, refund_no, action, **fault_args)
    hasty = {
        "outcome_deadline": timedelta(seconds=deadline_seconds),
        "abnormal_poll_interval": timedelta(seconds=1),
    }
    async with api_with(rec.shop, **hasty) as api:
        body = {"order_no": order["order_no"], "amount": amount, "refund_no": refund_no}
        response = await api.post("/v1/refunds", json=body, headers=rec.shop.customer)
        assert response.status_code == 202, response.text
    await rec.approve(refund_no)
    abnormal = await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    return order, refund_no, abnormal


async def _unreachable_then_abnormal(
    rec: Recorder, amount: int, *faults: str, **fault_args: Any
) -> tuple[dict[str, Any], str]:
    """A refund whose creates never answer by the outcome deadline: abnormal, nothing heard."""
    order, refund_no, abnormal = await _hasty_abnormal(rec, amount, 4, *faults, **fault_args)
    assert "gateway_unreachable" in events(abnormal)
    return order, refund_no


async def abnormal_resolved_failed_after_asking(rec: Recorder) -> Handle:
    """Ops resolve `failed` an abnormal refund the gateway never answered: the update asks the
    gateway first (nothing under the refund_no) and the step re-checks under the row lock."""
    await stripe_request_fault(
        rec.shop, action="http_500", method="POST", path_prefix="/v1/refunds", times=10_000
    )
    try:
        _, refund_no = await _unreachable_then_abnormal(rec, 1900)
    finally:
        await clear_stripe_faults(rec.shop)
    await rec.resolve(refund_no, "failed")
    await rec.shop.wait_status(refund_no, "failed")
    return await rec.closed_run(refund_no)


async def reopened_after_failure_succeeded(rec: Recorder) -> Handle:
    """The create is held in the network past the deadline; ops resolve `failed`; the create
    lands and Stripe pays it: the webhook starts a run that reopens and completes the refund."""
    _, refund_no = await _unreachable_then_abnormal(rec, 2300, "timeout", delay=15)
    await rec.resolve(refund_no, "failed")
    await rec.shop.wait_status(refund_no, "failed")
    first = await rec.closed_run(refund_no)
    await rec.shop.wait_status(refund_no, "succeeded", timeout=60)
    reopening = await rec.closed_run(refund_no)
    assert reopening.run_id != first.run_id, "the late success should start a new run"
    return reopening


async def reconciled(rec: Recorder, step_attempts: int = 10) -> Handle:
    """One reconciliation of today (UTC), run to its end."""
    handle = await rec.temporal.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(day=datetime.now(UTC).date().isoformat(), step_attempts=step_attempts),
        id=f"reconciliation-record-{uid('run')}",
        task_queue=rec.shop.stack.settings.task_queue,
        execution_timeout=timedelta(minutes=3),
    )
    await handle.result()
    return handle


async def reconciliation_late_failure_reopened(rec: Recorder) -> Handle:
    """A refund made at Stripe five days ago fails today, its webhook lost: the run's
    `stripe_failures` phase finds it and reopens it (patch `reconciliation-late-changes`)."""
    order = await rec.shop.order(amount=2700)
    refund_no = await rec.request(order, 2700, "no_webhook")
    await rec.approve(refund_no)
    await rec.shop.wait_status(refund_no, "succeeded", timeout=30)
    [at_gateway] = await stripe_refunds(rec.shop, refund_no)
    path = f"/_sandbox/refunds/{at_gateway['id']}"
    created = {"created": int(at_gateway["created"]) - 5 * 86_400}
    await sandbox(rec.shop.stack.stripe_url, "POST", f"{path}/created", json=created)
    await rec.stripe_move(refund_no, "fail")
    handle = await reconciled(rec)
    await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    return handle


async def reconciliation_phase_given_up(rec: Recorder) -> Handle:
    """Stripe's Events API answers 500 throughout: `stripe_failures` is given up after its
    tries and the run goes on to its last phase and closes."""
    spec = {"action": "http_500", "method": "GET", "path_prefix": "/v1/events", "times": 1000}
    await sandbox(rec.shop.stack.stripe_url, "POST", "/_sandbox/faults", json=spec)
    try:
        return await reconciled(rec, step_attempts=2)
    finally:
        await sandbox(rec.shop.stack.stripe_url, "DELETE", "/_sandbox/faults")


async def payment_check_paid(rec: Recorder) -> Handle:
    """A paid order's registration: its payment read at Stripe through the gateway queue."""
    order = await rec.shop.order(amount=2500)
    check = payment_check_id(Channel.STRIPE, order["payment_ref"])
    return await closed(rec.temporal.get_workflow_handle(check), timeout=30)


async def payment_check_gateway_unavailable(rec: Recorder) -> Handle:
    """Stripe fails every read: the tries are used up and the check fails typed (a 503)."""
    shop = rec.shop
    fault = {"action": "http_500", "method": "GET", "path_prefix": "/v1/payment_intents"}
    paid = await sandbox(shop.stack.stripe_url, "POST", "/_sandbox/payments", json={"amount": 900})
    await sandbox(shop.stack.stripe_url, "POST", "/_sandbox/faults", json=fault | {"times": 20})
    try:
        body = {
            "order_no": uid("ord"),
            "user_id": shop.customer_id,
            "channel": "stripe",
            "currency": "USD",
            "total_amount": 900,
            "paid_amount": 900,
            "payment_ref": paid["id"],
        }
        response = await shop.http.post("/v1/orders", json=body, headers=shop.admin)
        assert response.status_code == 503, response.text
    finally:
        await sandbox(shop.stack.stripe_url, "DELETE", "/_sandbox/faults")
    check = payment_check_id(Channel.STRIPE, paid["id"])
    return await closed(rec.temporal.get_workflow_handle(check), timeout=30)


async def _failed_by_the_gateway(rec: Recorder, amount: int, fault: str, event: str) -> Handle:
    order = await rec.shop.order(amount=amount)
    refund_no = await rec.request(order, amount, fault)
    await rec.approve(refund_no)
    failed = await rec.shop.wait_status(refund_no, "failed", timeout=30)
    assert event in events(failed)
    return await rec.closed_run(refund_no)


async def refused_failed(rec: Recorder) -> Handle:
    """The gateway refuses the create (a known refusal code): failed, the amount released."""
    return await _failed_by_the_gateway(rec, 1700, "permanent_error", "gateway_refused")


async def webhook_failed_while_processing(rec: Recorder) -> Handle:
    """Stripe fails the refund while it is processing and tells us by webhook."""
    return await _failed_by_the_gateway(rec, 1800, "fail", "gateway_failed")


async def lookups_failed_then_polled(rec: Recorder) -> Handle:
    """No webhook; the first lookups fail (no news), a later poll finds the success."""
    order = await rec.shop.order(amount=1900)
    refund_no = await rec.request(order, 1900, "no_webhook", "pending_forever")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    await stripe_request_fault(
        rec.shop, action="http_500", method="GET", path_prefix="/v1/refunds", times=10_000
    )
    try:
        await wait_event(rec.shop, refund_no, "gateway_lookup_failed", timeout=40)
    finally:
        await clear_stripe_faults(rec.shop)
    await rec.stripe_move(refund_no, "succeed")
    done = await rec.shop.wait_status(refund_no, "succeeded", timeout=40)
    assert "gateway_lookup_failed" in events(done)
    return await rec.closed_run(refund_no)


async def wechat_abnormal_resolved_succeeded(rec: Recorder) -> Handle:
    """WeChat Pay answers ABNORMAL (the payer's card closed): ops settle it offline."""
    order = await rec.shop.order("wechatpay", amount=2100)
    refund_no = uid("rf")
    body = {"refund_no": refund_no, "action": "abnormal"}
    await sandbox(rec.shop.stack.wechat_url, "POST", "/sandbox/faults", json=body)
    await rec.shop.refund(order, 2100, refund_no=refund_no)
    await rec.approve(refund_no)
    abnormal = await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "gateway_abnormal" in events(abnormal)
    await rec.resolve(refund_no, "succeeded")
    await rec.shop.wait_status(refund_no, "succeeded")
    return await rec.closed_run(refund_no)


async def abnormal_settled_by_poll(rec: Recorder) -> Handle:
    """Past the outcome deadline, abnormal; no webhook; its own poll finds the success."""
    _, refund_no, _ = await _hasty_abnormal(rec, 2200, 3, "pending_forever", "no_webhook")
    await rec.stripe_move(refund_no, "succeed")
    await rec.shop.wait_status(refund_no, "succeeded", timeout=30)
    return await rec.closed_run(refund_no)


async def _forged(rec: Recorder, refund_no: str, notification: GatewayNotification) -> None:
    handle = rec.temporal.get_workflow_handle(workflow_id(refund_no))
    await handle.signal(RefundWorkflow.gateway_notification, notification)


async def forged_signal_forgotten_then_succeeded(rec: Recorder) -> Handle:
    """A signal nobody verified says failed: forgotten (patch `unheard-gateway-answer-is-a-
    hint`), then Stripe's real word settles the refund."""
    order = await rec.shop.order(amount=2300)
    refund_no = await rec.request(order, 2300, "pending_forever")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    forged = GatewayNotification(refund_no, GatewayStatus.FAILED, "re_forged", source="webhook")
    await _forged(rec, refund_no, forged)
    await wait_event(rec.shop, refund_no, "gateway_answer_unverified")
    await rec.stripe_move(refund_no, "succeed")
    await rec.shop.wait_status(refund_no, "succeeded", timeout=30)
    return await rec.closed_run(refund_no)


async def currency_mismatch_resolved_succeeded(rec: Recorder) -> Handle:
    """A word about a refund under our refund_no in another currency is not ours (patch
    `gateway-currency-compared`): abnormal, never succeeded by it; ops settle it."""
    order = await rec.shop.order(amount=2400)
    refund_no = await rec.request(order, 2400, "pending_forever")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    other = GatewayNotification(
        refund_no,
        GatewayStatus.SUCCEEDED,
        "re_other",
        source="webhook",
        amount=2400,
        payment_ref=order["payment_ref"],
        currency="JPY",
    )
    await _forged(rec, refund_no, other)
    abnormal = await rec.shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "gateway_refund_mismatch" in events(abnormal)
    await rec.resolve(refund_no, "succeeded")
    await rec.shop.wait_status(refund_no, "succeeded")
    return await rec.closed_run(refund_no)


async def foreign_refund_ignored_then_succeeded(rec: Recorder) -> Handle:
    """While ours is processing, another refund under our refund_no (another payment) fails:
    ignored, ours goes on (patch `foreign-refund-ignored-once-ours-known`) and succeeds."""
    ours = await rec.shop.order(amount=2600)
    theirs = await rec.shop.order(amount=8000)
    refund_no = await rec.request(ours, 2600, "pending_forever")
    await rec.approve(refund_no)
    await wait_event(rec.shop, refund_no, "gateway_submitted")
    await asyncio.to_thread(foreign_stripe_refund, rec.shop, refund_no, theirs["payment_ref"], 900)
    refunds = await stripe_refunds(rec.shop, refund_no)
    [foreign] = [r for r in refunds if r["payment_intent"] == theirs["payment_ref"]]
    [mine] = [r for r in refunds if r["payment_intent"] == ours["payment_ref"]]
    stripe = rec.shop.stack.stripe_url
    await sandbox(stripe, "POST", f"/_sandbox/refunds/{foreign['id']}/fail")
    await asyncio.sleep(2)
    assert (await rec.shop.get_refund(refund_no))["status"] == "processing"
    await sandbox(stripe, "POST", f"/_sandbox/refunds/{mine['id']}/succeed")
    await rec.shop.wait_status(refund_no, "succeeded", timeout=30)
    return await rec.closed_run(refund_no)


PATHS: dict[str, Drive] = {
    # First: its reconciliation looks at every refund of the day, so it runs on a quiet stack.
    "repaired_processing_succeeded": repaired_processing_succeeded,
    "succeeded_stripe": succeeded_stripe,
    "succeeded_wechatpay": succeeded_wechatpay,
    "rejected": rejected,
    "expired": expired,
    "apply_refused_over_refundable": apply_refused_over_refundable,
    "auto_approved": auto_approved,
    "abnormal_resolved_succeeded": abnormal_resolved_succeeded,
    "settled_by_poll": settled_by_poll,
    "late_failure_resolved_failed": late_failure_resolved_failed,
    "reopened_resolved_failed": reopened_resolved_failed,
    "reopened_resolved_succeeded": reopened_resolved_succeeded,
    "mismatch_resolved_failed": mismatch_resolved_failed,
    "abnormal_resolved_failed_after_asking": abnormal_resolved_failed_after_asking,
    "reopened_after_failure_succeeded": reopened_after_failure_succeeded,
    "refused_failed": refused_failed,
    "webhook_failed_while_processing": webhook_failed_while_processing,
    "lookups_failed_then_polled": lookups_failed_then_polled,
    "wechat_abnormal_resolved_succeeded": wechat_abnormal_resolved_succeeded,
    "abnormal_settled_by_poll": abnormal_settled_by_poll,
    "forged_signal_forgotten_then_succeeded": forged_signal_forgotten_then_succeeded,
    "currency_mismatch_resolved_succeeded": currency_mismatch_resolved_succeeded,
    "foreign_refund_ignored_then_succeeded": foreign_refund_ignored_then_succeeded,
    "reconciliation_late_failure_reopened": reconciliation_late_failure_reopened,
    "reconciliation_phase_given_up": reconciliation_phase_given_up,
    "payment_check_paid": payment_check_paid,
    "payment_check_gateway_unavailable": payment_check_gateway_unavailable,
    # Last: its endpoint hears every event committed while it exists.
    "webhook_endpoint_delivered_then_deleted": webhook_endpoint_delivered_then_deleted,
}


# ---- checking and writing -------------------------------------------------------------------


def _strings(node: Any) -> Iterator[str]:
    """Every string in a history's JSON, payload data decoded (it is base64 there)."""
    if isinstance(node, dict):
        data = node.get("data")
        if "metadata" in node and isinstance(data, str):
            yield base64.b64decode(data).decode("utf-8", "replace")
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def leaks(history: dict[str, Any], secrets: list[str]) -> list[str]:
    """What in a history looks like a secret or is one of the stack's own."""
    found = []
    for text in _strings(history):
        shape = SECRET_SHAPES.search(text)
        if shape:
            found.append(shape.group(0))
        found += [f"settings secret ({len(s)} chars)" for s in secrets if s in text]
    return found


def stack_secrets(stack: Stack) -> list[str]:
    settings = stack.settings
    values = [
        settings.jwt_secret,
        settings.stripe_api_key,
        settings.stripe_webhook_secret,
        settings.wechatpay_apiv3_key,
        settings.payload_keys,
    ]
    return [v for v in values if v]


def decrypted(history: WorkflowHistory, settings: Settings) -> WorkflowHistory:
    """The history with its payloads decrypted: checked for secrets in clear, and stored so it
    replays whatever keys a later replay holds (the codec passes plain payloads through)."""
    codec = EncryptionCodec(settings.payload_key_set())
    for event in history.events:
        transform_payloads(event, codec.decrypt)
    return history


def stem_of(name: str) -> str:
    return name if name in OTHER_TYPES else f"refund_{name}"


def target_of(name: str) -> Path:
    return HISTORIES / f"{stem_of(name)}.json"


async def record(name: str, drive: Drive, rec: Recorder) -> None:
    handle = await drive(rec)
    history = decrypted(await handle.fetch_history(), rec.shop.stack.settings)
    started = history.events[0].workflow_execution_started_event_attributes
    expected = OTHER_TYPES.get(name, WORKFLOW_TYPE)
    assert started.workflow_type.name == expected, (name, started.workflow_type.name)
    found = leaks(history.to_json_dict(), stack_secrets(rec.shop.stack) + rec.secrets)
    if found:
        raise AssertionError(f"{name}: the history holds secrets ({sorted(set(found))})")
    target_of(name).write_text(history.to_json() + "\n")
    print(f"{stem_of(name)}: {len(history.events)} events, run {handle.run_id}", flush=True)


async def record_all(names: list[str], stack: Stack) -> None:
    temporal = await connect(stack.settings, attempts=1)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        for name in names:
            # A shop of fresh identities per path, as each e2e test has.
            await record(name, PATHS[name], Recorder(Shop.open(stack, http), temporal))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", metavar="PATH", help=f"default: all of {list(PATHS)}")
    parser.add_argument("--force", action="store_true", help="overwrite stored histories")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths {unknown}; known: {list(PATHS)}")
    names = [n for n in args.paths or PATHS if args.force or not target_of(n).exists()]
    for stored in sorted(set(args.paths or PATHS) - set(names)):
        print(f"{stem_of(stored)}: stored already, skipped (--force overwrites)")
    if not names:
        return 0
    # Dev mode, as the tests run: the stack's secrets are generated into its temporary dir.
    os.environ["REFUNDS_DEV_SECRETS"] = "true"
    root = Path(tempfile.mkdtemp(prefix="refunds-record-"))
    postgres = EmbeddedPostgres(root / "pg", free_port(), durable=False)
    temporal = EmbeddedTemporal(free_port(), None, None, root / "temporal.log")
    stack: Stack | None = None
    try:
        database_url = postgres.start()
        upgrade(database_url)
        (root / "stack").mkdir()
        stack = start_stack(root / "stack", database_url, temporal.start())
        asyncio.run(record_all(names, stack))
    finally:
        if stack is not None:
            stack.stop()
        temporal.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
