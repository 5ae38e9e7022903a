"""Reaching a refund's workflow from outside it (webhooks, reconciliation).

One home for how a gateway's word gets to a refund: signal its running run; when that run has
finished, start the run the news calls for (a late failure reopens a succeeded refund; a refund
left unfinished by a closed run is repaired).
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from temporalio.client import Client
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from refunds.db.models import Refund
from refunds.domain.messages import (
    TERMINAL_STATUSES,
    Channel,
    GatewayNotification,
    GatewayStatus,
    RefundRequest,
    RefundSource,
    RefundStatus,
)
from refunds.settings import Settings
from workflows.refund import RefundWorkflow, start_attributes, workflow_id


class Delivery(StrEnum):
    SIGNALLED = "signalled"
    REOPENED = "reopened"
    REPAIRED = "repaired"  # its run was closed under an unfinished refund: a fresh run took it
    IGNORED = "ignored"  # its workflow has finished and the news changes nothing


def request_from_row(refund: Refund, settings: Settings) -> RefundRequest:
    """The refund's request as its ledger row has it, with today's timings."""
    return RefundRequest(
        refund_no=refund.refund_no,
        order_no=refund.order_no,
        amount=refund.amount,
        reason=refund.reason,
        requested_by=refund.requested_by,
        source=RefundSource(refund.source),
        items=refund.item_list(),
        timings=settings.refund_timings(),
        auto_approve_limit=settings.auto_approve_limit_for(refund.currency),
    )


async def deliver(
    client: Client,
    settings: Settings,
    refund: Refund,
    notification: GatewayNotification,
    *,
    ours: bool = True,
) -> Delivery:
    """Signal the refund's run. When its run is closed: an unfinished refund is repaired (the
    new run asks the gateway itself); news about our own gateway refund that contradicts the
    finished ledger reopens it (a late failure of a success; a success of a failed refund: the
    money went out); else nothing. `ours` False: the gateway refund is another one under our
    refund_no (another payment, amount or currency), whose word never reopens ours."""
    handle = client.get_workflow_handle(workflow_id(refund.refund_no))
    try:
        await handle.signal(RefundWorkflow.gateway_notification, notification)
        return Delivery.SIGNALLED
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    if RefundStatus(refund.status) not in TERMINAL_STATUSES:
        # Read before the signal: if it finished meanwhile, the repair run stands down.
        return Delivery.REPAIRED if await repair(client, settings, refund) else Delivery.IGNORED
    summary = REOPENING.get((RefundStatus(refund.status), notification.status))
    if not ours or summary is None:
        return Delivery.IGNORED
    reopening = replace(request_from_row(refund, settings), reopened_by=notification)
    kind = f"reopened, {summary}"
    await _start_run(
        client, settings, refund, reopening, run_summary(refund.refund_no, refund.order_no, kind)
    )
    return Delivery.REOPENED


# A finished refund the gateway contradicts: (ledger status, gateway's word) → why it reopens.
REOPENING = {
    (RefundStatus.SUCCEEDED, GatewayStatus.FAILED): "the gateway failed it after success",
    (RefundStatus.FAILED, GatewayStatus.SUCCEEDED): "the gateway paid it after it had failed",
}


def run_summary(refund_no: str, order_no: str, kind: str) -> str:
    """A run's static summary, shown in clear in the Temporal UI's list (the codec seals it, but
    not every viewer decodes): which refund and why it runs, never who asked or their words."""
    return f"Refund {refund_no} of order {order_no}: {kind}"


async def _start_run(
    client: Client, settings: Settings, refund: Refund, request: RefundRequest, summary: str
) -> None:
    """A new run for a refund whose last run has closed (never beside an open one), with the
    search attributes its ledger row gives."""
    await client.start_workflow(
        RefundWorkflow.run,
        request,
        id=workflow_id(refund.refund_no),
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=start_attributes(
            refund.refund_no,
            refund.order_no,
            Channel(refund.channel),
            refund.amount,
            RefundStatus(refund.status),
        ),
        static_summary=summary,
    )


async def is_running(client: Client, refund_no: str) -> bool:
    """Whether the refund has an open run (none at all counts as closed)."""
    try:
        described = await client.get_workflow_handle(workflow_id(refund_no)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.status is not None and described.status.name == "RUNNING"


async def repair(client: Client, settings: Settings, refund: Refund) -> bool:
    """Start a run that claims the refund and carries it on. False when a run is open already:
    two runs must never carry one refund."""
    repairing = replace(request_from_row(refund, settings), repair=True)
    try:
        await _start_run(
            client,
            settings,
            refund,
            repairing,
            run_summary(refund.refund_no, refund.order_no, f"repair ({refund.status})"),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True
