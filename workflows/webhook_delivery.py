"""WebhookEndpointDelivery: one long-lived workflow per webhook endpoint (issue 13).

It works through the endpoint's pending deliveries: a refund's events go out one after the other
(its lane), at most `concurrency` lanes at once, so one slow refund or receiver never holds the
others and one endpoint never holds another's workflow. Woken by a signal after each commit
that gave it a delivery; a timer sweeps for deliveries whose wake-up was lost. It continues as
new once its history grows, after its lanes in flight have settled.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import WebhookSteps
    from refunds.domain.messages import (
        DeliveryGaveUp,
        DeliveryHead,
        DeliveryTry,
        EndpointRun,
        LaneQuery,
    )

LEDGER_TIMEOUT = timedelta(seconds=30)
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# Past this many events, the run continues as new (well under Temporal's suggestion).
HISTORY_LIMIT = 4000
# The delivery activity's failure types no retry fixes.
NON_RETRYABLE = ["WebhookTargetRefused"]


def workflow_id(endpoint_id: int) -> str:
    return f"webhook-endpoint-{endpoint_id}"


@workflow.defn(name="WebhookEndpointDelivery")
class WebhookEndpointDelivery:
    def __init__(self) -> None:
        self._woken = False
        self._busy: set[str] = set()
        self._lanes: set[asyncio.Task[None]] = set()

    @workflow.signal
    def wake(self) -> None:
        """New deliveries were committed (or queued again): look now, not at the next sweep."""
        self._woken = True

    @workflow.run
    async def run(self, run: EndpointRun) -> None:
        while not self._history_full():
            self._woken = False
            if not await self._start_lanes(run):
                break  # the endpoint was deleted
            try:
                await workflow.wait_condition(
                    lambda: self._woken, timeout=timedelta(seconds=run.timings.sweep_interval)
                )
            except TimeoutError:
                pass  # the sweep: look for deliveries whose wake-up never came
        await workflow.wait_condition(lambda: not self._busy)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._history_full():
            workflow.continue_as_new(run)

    async def _start_lanes(self, run: EndpointRun) -> bool:
        room = run.timings.concurrency - len(self._busy)
        if room <= 0:
            return True
        found = await workflow.execute_activity_method(
            WebhookSteps.pending_lanes,
            LaneQuery(run.endpoint_id, sorted(self._busy), room),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        for head in found.heads:
            self._busy.add(head.lane)
            task = asyncio.create_task(self._deliver(run, head))
            self._lanes.add(task)
            task.add_done_callback(self._lanes.discard)
        return found.active

    async def _deliver(self, run: EndpointRun, head: DeliveryHead) -> None:
        """Tried with backoff until delivered or REFUNDS_WEBHOOK_RETRY_FOR is over; then the
        delivery failed and the endpoint is failing, and the lane goes on with the next."""
        timings = run.timings
        try:
            await workflow.execute_activity_method(
                WebhookSteps.deliver_event,
                DeliveryTry(head.delivery_id, timings.timeout),
                # The HTTP timeout, then time to record the try.
                start_to_close_timeout=timedelta(seconds=timings.timeout + 5),
                schedule_to_close_timeout=timedelta(seconds=timings.retry_for),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timings.retry_initial),
                    maximum_interval=timedelta(seconds=timings.retry_max),
                    backoff_coefficient=2.0,
                    non_retryable_error_types=NON_RETRYABLE,
                ),
            )
        except ActivityError as failed:
            cause = failed.cause if failed.cause is not None else failed
            await workflow.execute_activity_method(
                WebhookSteps.give_up_delivery,
                DeliveryGaveUp(head.delivery_id, str(cause)),
                start_to_close_timeout=LEDGER_TIMEOUT,
                retry_policy=LEDGER_RETRY,
            )
        finally:
            self._busy.discard(head.lane)
            self._woken = True

    def _history_full(self) -> bool:
        return workflow.info().get_current_history_length() > HISTORY_LIMIT
