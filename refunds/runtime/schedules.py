"""The Temporal Schedules the product runs (issue 9): created or updated idempotently, so
`refunds schedules apply` and `refunds dev` can run any number of times."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from refunds.domain.messages import ReconciliationInput
from refunds.settings import Settings
from workflows.reconciliation import ReconciliationWorkflow

RECONCILIATION_SCHEDULE = "refunds-reconciliation"
RUN_LIMIT = timedelta(hours=20)


def reconciliation_schedule(settings: Settings) -> Schedule:
    """Daily at `REFUNDS_RECONCILIATION_TIME` in `REFUNDS_RECONCILIATION_TIME_ZONE`; a run still
    going when the next is due is left alone (skip), never doubled."""
    hour, minute = (int(part) for part in settings.reconciliation_time.split(":", 1))
    zone = settings.reconciliation_time_zone
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(
                time_zone=zone, step_attempts=settings.reconciliation_step_attempts
            ),
            id="reconciliation",
            task_queue=settings.task_queue,
            static_summary="Daily reconciliation of the ledger with Stripe and WeChat Pay",
            # Under a day: a run that hangs ends before the next is due, which it would skip.
            execution_timeout=RUN_LIMIT,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])
            ],
            time_zone_name=zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def apply_schedules(client: Client, settings: Settings) -> str:
    """'created' or 'updated': the schedule matches the settings either way."""
    schedule = reconciliation_schedule(settings)
    try:
        await client.create_schedule(RECONCILIATION_SCHEDULE, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def _replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(RECONCILIATION_SCHEDULE).update(_replace)
    return "updated"
