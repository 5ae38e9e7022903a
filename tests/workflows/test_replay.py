"""Stored histories of shipped refund runs replay against today's code.

A change to the workflow that would break running refunds fails here (non-determinism). Add a
history here whenever a new path ships; regenerate none of them to make a change pass.
`refund_*.json` are runs of the `Refund` type (issue 11), recorded by
`python -m tests.workflows.record_histories`, as is `webhook_endpoint_*.json`, a run of
`WebhookEndpointDelivery` (issue 13), and `payment_check_*.json`, runs of `PaymentCheck`; the
others, runs of the first type.

They replay with the workers' data converter: its codec decrypts what it encrypted and passes
the plain payloads of these histories through. `record_histories` stores them decrypted, so they
replay whatever the keys of the stack that recorded them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from refunds.runtime.payload_codec import (
    EncryptionCodec,
    new_key_text,
    parse_payload_keys,
    payloads_in,
)
from refunds.runtime.payload_converter import encrypted
from refunds.runtime.workflow_runner import ContextFreeSandboxRunner, workflow_runner
from workflows.payment_check import PaymentCheckWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund import RefundWorkflow
from workflows.refund_v1 import RefundWorkflowV1
from workflows.webhook_delivery import WebhookEndpointDelivery

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
NEW_TYPE_HISTORIES = [p for p in HISTORIES if p.stem.startswith("refund_")]
# The workflows worker.py registers (build_workers, both of its workers): a history replays
# against what runs it.
WORKFLOWS = [
    RefundWorkflow,
    RefundWorkflowV1,
    ReconciliationWorkflow,
    PaymentCheckWorkflow,
    WebhookEndpointDelivery,
]
REGISTERED_TYPES = {workflow._Definition.must_from_class(cls).name for cls in WORKFLOWS}
# The issue's target for a happy-path refund, counted in its history.
HAPPY_REFUND_MAX_EVENTS = 30
CODEC = EncryptionCodec(parse_payload_keys(f"new:{new_key_text()},old:{new_key_text()}"))
CONVERTER = encrypted(CODEC)


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(history: WorkflowHistory) -> str:
    """The type the replayer picks the class by: the one the run was started as."""
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def replayer(converter: DataConverter) -> Replayer:
    # With the workers' sandbox runner: the replay runs what a worker runs.
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=converter,
        workflow_runner=workflow_runner(converter, WORKFLOWS),
    )


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays_deterministically(path: Path) -> None:
    result = await replayer(CONVERTER).replay_workflow(load(path))
    assert result.replay_failure is None


def sealed(history: WorkflowHistory) -> WorkflowHistory:
    """The history as workers with the codec write it: every payload the SDK passes through
    the codec encrypted; search attributes and local activities' marker data stay plain."""
    events = []
    for stored in history.events:
        event = HistoryEvent()
        event.CopyFrom(stored)
        marker = event.marker_recorded_event_attributes.details.get("data")
        bookkeeping = list(marker.payloads) if marker is not None else []
        for payload in payloads_in(event):
            if "type" not in payload.metadata and payload not in bookkeeping:
                payload.CopyFrom(CODEC.encrypt(payload))
        events.append(event)
    return WorkflowHistory(history.workflow_id, events)


def encrypted_payloads(history: WorkflowHistory) -> list[Payload]:
    return [p for e in history.events for p in payloads_in(e) if "encryption-key-id" in p.metadata]


async def test_encrypted_history_replays_with_the_codec_and_not_without() -> None:
    history = sealed(load(Path(__file__).parent / "histories" / "refund_succeeded_stripe.json"))
    assert len(encrypted_payloads(history)) > 10
    assert (await replayer(CONVERTER).replay_workflow(history)).replay_failure is None
    plain = replayer(DataConverter.default)
    failed = await plain.replay_workflow(history, raise_on_replay_failure=False)
    assert failed.replay_failure is not None


def test_the_replays_converter_keeps_the_context_free_sandbox() -> None:
    # The codec takes no serialization context: the workers' fast runner stays valid.
    assert isinstance(workflow_runner(CONVERTER, WORKFLOWS), ContextFreeSandboxRunner)


def test_histories_cover_the_main_paths() -> None:
    assert {p.stem for p in HISTORIES} >= {
        "succeeded_stripe",
        "succeeded_wechatpay",
        "rejected",
        "apply_rejected_over_refundable",
        "abnormal_resolved_succeeded",
        # Recorded before restores were reversed after a late failure, and after: the
        # `reverse-restores-after-late-failure` patch keeps the first replaying.
        "late_failure_resolved_failed_before_reversal",
        "late_failure_resolved_failed",
        # Issue 8: lookups failing until the deadline, then the abnormal refund's own poll finds
        # the success (patches `poll-answers-recorded`, `abnormal-keeps-listening`); a refund at
        # the gateway under our refund_no for another amount, resolved failed by ops.
        "abnormal_settled_by_gateway_poll",
        "mismatch_resolved_failed",
        # Issue 9: a refund terminated mid-processing, repaired by reconciliation and finished;
        # the reconciliation run that repaired it.
        "repaired_processing_succeeded",
        "reconciliation_repaired_one",
        # Patch `reconciliation-late-changes`: the late-failure and look-back phases (a refund
        # created days ago failed today, reopened) and a phase given up after its tries.
        "reconciliation_late_failure_reopened",
        "reconciliation_phase_given_up",
        # Issue 11: refund_* are runs of the new `Refund` type, one per main path. The late
        # failure reaches the refund's own run before it ends (its worker was away); the
        # reopened ones are runs a late failure started after the refund's run had finished.
        "refund_succeeded_stripe",
        "refund_succeeded_wechatpay",
        "refund_rejected",
        "refund_expired",
        "refund_apply_refused_over_refundable",
        "refund_auto_approved",
        "refund_abnormal_resolved_succeeded",
        "refund_settled_by_poll",
        "refund_late_failure_resolved_failed",
        "refund_mismatch_resolved_failed",
        "refund_repaired_processing_succeeded",
        "refund_reopened_resolved_failed",
        "refund_reopened_resolved_succeeded",
        # The gateway's word is final: ops resolving `failed` ask the gateway first (patch
        # `resolve-failed-asks-gateway`); a success after a failed outcome reopens the refund
        # in a new run (patch `success-after-failure-reopens`).
        "refund_abnormal_resolved_failed_after_asking",
        "refund_reopened_after_failure_succeeded",
        # Branches the stored runs lacked, and the patches `unheard-gateway-answer-is-a-hint`
        # (a forged signal forgotten) and `gateway-currency-compared`.
        "refund_refused_failed",
        "refund_webhook_failed_while_processing",
        "refund_lookups_failed_then_polled",
        "refund_wechat_abnormal_resolved_succeeded",
        "refund_abnormal_settled_by_poll",
        "refund_forged_signal_forgotten_then_succeeded",
        "refund_currency_mismatch_resolved_succeeded",
        # Patch `foreign-refund-ignored-once-ours-known`: another refund under our refund_no
        # fails while ours is processing; ours goes on and succeeds.
        "refund_foreign_refund_ignored_then_succeeded",
        # Issue 13: the long-lived delivery workflow of one webhook endpoint, which delivered a
        # refund's events (one retried) and ended when its endpoint was deleted.
        "webhook_endpoint_delivered_then_deleted",
        # A paid order's payment read at its gateway, and the same read with the gateway down
        # (its tries used up, the run failed typed).
        "payment_check_paid",
        "payment_check_gateway_unavailable",
    }


def test_every_stored_history_is_of_a_type_the_worker_registers() -> None:
    # A history of a type no worker runs replays against nothing: it would guard no refund.
    types = {p.stem: workflow_type(load(p)) for p in HISTORIES}
    assert {stem: t for stem, t in types.items() if t not in REGISTERED_TYPES} == {}


@pytest.mark.parametrize("path", NEW_TYPE_HISTORIES, ids=[p.stem for p in NEW_TYPE_HISTORIES])
def test_refund_history_is_a_finished_run_of_the_new_type(path: Path) -> None:
    history = load(path)
    assert workflow_type(history) == "Refund"
    # Carried to its end, so a replay goes through every step of the path.
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


def test_happy_stripe_refund_history_is_within_the_issue_target() -> None:
    history = load(Path(__file__).parent / "histories" / "refund_succeeded_stripe.json")
    assert len(history.events) <= HAPPY_REFUND_MAX_EVENTS


def test_webhook_endpoint_history_is_a_run_ended_by_its_endpoints_deletion() -> None:
    history = load(
        Path(__file__).parent / "histories" / "webhook_endpoint_delivered_then_deleted.json"
    )
    assert workflow_type(history) == "WebhookEndpointDelivery"
    # Completed, not continued as new: the replay goes through the deletion's end of the loop.
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
