"""BareWorkflow: the product's happy path with empty steps, so the bench can tell what Temporal
itself costs for a refund's shape from what the product adds (SPEC §4's story, no I/O).

Started by Update-with-Start (`apply`, answered after a local activity, as the product's apply is
answered after its ledger transaction); an `approve` update runs a local activity and upserts a
search attribute; then the regular activities, the signals awaited under a poll timer, the
remaining local activities and upserts. Every step's body is empty (`bare_step`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from refunds.bench.bare_messages import (
        BareApproval,
        BareInput,
        BareResult,
        BareSignal,
        BareStep,
        BareStepDone,
    )

# Its own values of the product's attribute: filtering on real statuses never shows them.
BENCH_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
STEP_TIMEOUT = timedelta(seconds=15)
STEP_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200))


@activity.defn(name="bare_step")
async def bare_step(step: BareStep) -> BareStepDone:
    return BareStepDone(step.name)


@workflow.defn
class BareWorkflow:
    @workflow.init
    def __init__(self, bare: BareInput) -> None:
        self._bare = bare
        self._local_left = bare.shape.local_activities
        self._upserts_left = bare.shape.upserts
        self._timers_left = bare.shape.timers
        self._cancels_left = bare.shape.cancelled_timers
        self._applied = False
        self._approval: BareApproval | None = None
        self._approved = False
        self._signals = 0

    @workflow.run
    async def run(self, bare: BareInput) -> BareResult:
        await self._local("apply")
        self._upsert("bench_pending")
        self._applied = True
        await self._wait(lambda: self._approval is not None, bare.approval_timeout_seconds)
        await workflow.wait_condition(lambda: self._approved)
        for i in range(bare.shape.activities):
            await workflow.execute_activity(
                bare_step,
                BareStep(f"activity-{i}"),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=STEP_RETRY,
            )
        await self._wait(lambda: self._signals >= bare.shape.signals, bare.poll_interval_seconds)
        while self._local_left > 0:
            await self._local("finish")
        while self._upserts_left > 0:
            self._upsert("bench_done")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return BareResult("done", self._signals)

    @workflow.update
    async def apply(self) -> BareStepDone:
        await workflow.wait_condition(lambda: self._applied)
        return BareStepDone("apply")

    @workflow.update
    async def approve(self, approval: BareApproval) -> BareStepDone:
        self._approval = approval
        await self._local("approve")
        self._upsert("bench_processing")
        self._approved = True
        return BareStepDone("approve")

    @workflow.signal
    def notify(self, _: BareSignal) -> None:
        self._signals += 1

    async def _local(self, name: str) -> None:
        if self._local_left <= 0:
            return
        self._local_left -= 1
        await workflow.execute_local_activity(
            bare_step, BareStep(name), start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
        )

    def _upsert(self, value: str) -> None:
        if self._upserts_left <= 0:
            return
        self._upserts_left -= 1
        workflow.upsert_search_attributes([BENCH_STATUS.value_set(value)])

    async def _wait(self, done: Callable[[], bool], timeout_seconds: float) -> None:
        """Under a timer while the shape has one left, as the product waits; nothing happens
        when it fires (the bench always delivers first). A timer is cancelled when the wait
        ends, or left running, as the product does with its timers."""
        if self._timers_left <= 0:
            await workflow.wait_condition(done)
            return
        self._timers_left -= 1
        if self._cancels_left > 0:
            self._cancels_left -= 1
            try:
                await workflow.wait_condition(done, timeout=timedelta(seconds=timeout_seconds))
            except TimeoutError:
                await workflow.wait_condition(done)
            return
        # Never awaited to its end nor cancelled: closing the workflow drops it without an event.
        timer = asyncio.create_task(asyncio.sleep(timeout_seconds))
        await workflow.wait_condition(lambda: done() or timer.done())
        await workflow.wait_condition(done)
