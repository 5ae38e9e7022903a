"""Stored histories of shipped RefundWorkflow runs replay against today's code.

A change to the workflow that would break running refunds fails here (non-determinism). Add a
history here whenever a new path ships; regenerate none of them to make a change pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund import RefundWorkflow
from workflows.refund_v1 import RefundWorkflowV1

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_stored_history_replays_deterministically(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[RefundWorkflow, RefundWorkflowV1, ReconciliationWorkflow])
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None


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
    }
