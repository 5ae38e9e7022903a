"""ReconciliationWorkflow: one run of the daily comparison of the ledger with the gateways.

Started by the `refunds-reconciliation` Schedule (or `refunds reconcile`). Its phases page
through the gateways' refunds of the window and every refund still open; each step is a
bounded activity that resumes from its last page after a crash, and a long run continues as
new so its history stays small. It never moves money: refunds hear the news in their own
workflows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from refunds.domain import activity_names as names
    from refunds.domain.errors import NON_RETRYABLE_TYPES
    from refunds.domain.messages import (
        ReconcileProgress,
        ReconcileStep,
        ReconciliationInput,
        ReconciliationOpened,
        ReconciliationSummary,
    )

# Stripe's refunds of the window; every open refund; WeChat Pay's of the window, one by one.
FIRST_PHASES = ("gateway", "open", "wechat_window")
# Then what finished before the window and changed in it: Stripe's refunds that failed in the
# window (its `refund.failed` events), our WeChat refunds settled within the look-back.
PHASES = (*FIRST_PHASES, "stripe_failures", "wechat_lookback")
LATE_CHANGES_PATCH = "reconciliation-late-changes"
STEPS_PER_RUN = 100  # then continue as new: the history of one run stays bounded
STEP_TIMEOUT = timedelta(minutes=10)
# Steps heartbeat per refund: a dead worker's step is retried (from its cursor) this soon.
STEP_HEARTBEAT = timedelta(seconds=15)
# Bounded: a step that keeps failing (a gateway down for hours) gives its phase up instead of
# holding the run open, since the Schedule skips the next days while one is open. Findings are
# committed one by one, so a phase given up keeps what it found; the next phases still run.
# Ten tries over about eight minutes ride out a restart or a short outage (steps: the run's
# `step_attempts`, REFUNDS_RECONCILIATION_STEP_ATTEMPTS).
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
# Each call's total, its retries included: a step that never answers is given up as well.
STEP_BUDGET = timedelta(minutes=30)
LEDGER_BUDGET = timedelta(minutes=5)


@workflow.defn
class ReconciliationWorkflow:
    def __init__(self) -> None:
        self._progress = "opening"
        self._retry = RETRY

    @workflow.run
    async def run(self, request: ReconciliationInput) -> ReconciliationSummary:
        opened = await self._open(request)
        request = replace(
            request,
            reconciliation_id=opened.reconciliation_id,
            window_start=opened.window_start,
            window_end=opened.window_end,
        )
        self._retry = replace(RETRY, maximum_attempts=max(1, request.step_attempts))
        # Runs started before the late phases, and before a failed phase was given up rather
        # than failing the run, replay as they ran.
        late = workflow.patched(LATE_CHANGES_PATCH)
        phases = PHASES if late else FIRST_PHASES
        failed, steps = list(request.failed_phases), 0
        for phase in phases[phases.index(request.phase) :]:
            cursor = request.cursor if phase == request.phase else None
            try:
                steps = await self._phase(
                    opened, replace(request, failed_phases=failed), phase, cursor, steps
                )
            except ActivityError:
                if not late:
                    raise
                # Its findings so far are committed; one phase down must not hide the others.
                failed.append(phase)
        return await workflow.execute_activity(
            names.CLOSE_RECONCILIATION,
            replace(opened, failed_phases=failed),
            result_type=ReconciliationSummary,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=LEDGER_BUDGET,
            retry_policy=RETRY,
        )

    async def _phase(
        self,
        opened: ReconciliationOpened,
        request: ReconciliationInput,
        phase: str,
        cursor: str | None,
        steps: int,
    ) -> int:
        """Step through one phase to its end; the run's step count after it."""
        while True:
            progress = await self._step(opened, phase, cursor)
            cursor, steps = progress.cursor, steps + 1
            if cursor is None:
                return steps
            if steps >= STEPS_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(replace(request, phase=phase, cursor=cursor))

    async def _open(self, request: ReconciliationInput) -> ReconciliationOpened:
        if request.reconciliation_id is not None:  # a continued run: its row is open already
            assert request.window_start is not None and request.window_end is not None
            return ReconciliationOpened(
                request.reconciliation_id, request.window_start, request.window_end
            )
        opened: ReconciliationOpened = await workflow.execute_activity(
            names.OPEN_RECONCILIATION,
            request,
            result_type=ReconciliationOpened,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=LEDGER_BUDGET,
            retry_policy=RETRY,
        )
        workflow.set_current_details(
            f"Reconciling refunds of **{opened.window_start} – {opened.window_end}** "
            f"(reconciliation {opened.reconciliation_id}): `GET /v1/reconciliations/"
            f"{opened.reconciliation_id}`"
        )
        return opened

    async def _step(
        self, opened: ReconciliationOpened, phase: str, cursor: str | None
    ) -> ReconcileProgress:
        progress: ReconcileProgress = await workflow.execute_activity(
            names.RECONCILE_STEP,
            ReconcileStep(
                opened.reconciliation_id, opened.window_start, opened.window_end, phase, cursor
            ),
            result_type=ReconcileProgress,
            start_to_close_timeout=STEP_TIMEOUT,
            schedule_to_close_timeout=STEP_BUDGET,
            heartbeat_timeout=STEP_HEARTBEAT,
            retry_policy=self._retry,
        )
        self._progress = f"{phase}: {progress.seen} seen, {progress.findings} findings"
        workflow.set_current_details(
            f"Reconciliation {opened.reconciliation_id}, phase **{phase}**: last step "
            f"{progress.seen} seen, {progress.findings} new findings"
        )
        return progress

    @workflow.query
    def progress(self) -> str:
        return self._progress
