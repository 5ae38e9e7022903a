"""`refunds schedules apply` and `refunds reconcile`: the daily reconciliation by hand."""

from __future__ import annotations

import asyncio
import uuid

from refunds.domain.messages import ReconciliationInput, ReconciliationSummary
from refunds.runtime.schedules import RECONCILIATION_SCHEDULE, apply_schedules
from refunds.runtime.temporal_client import connect
from refunds.settings import Settings, get_settings
from workflows.reconciliation import ReconciliationWorkflow


async def _apply(settings: Settings) -> str:
    client = await connect(settings)
    return await apply_schedules(client, settings)


def schedules_apply() -> int:
    settings = get_settings()
    outcome = asyncio.run(_apply(settings))
    print(
        f"schedule {RECONCILIATION_SCHEDULE} {outcome}: daily at {settings.reconciliation_time} "
        f"{settings.reconciliation_time_zone}"
    )
    return 0


async def _reconcile(settings: Settings, day: str | None) -> ReconciliationSummary:
    client = await connect(settings)
    return await client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(
            day=day,
            time_zone=settings.reconciliation_time_zone,
            step_attempts=settings.reconciliation_step_attempts,
        ),
        id=f"reconciliation-manual-{day or 'yesterday'}-{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue,
        static_summary=f"Reconciliation run by hand ({day or 'yesterday'})",
    )


def reconcile(day: str | None) -> int:
    """Run one reconciliation now and print its summary; exit 1 when it found anything."""
    summary = asyncio.run(_reconcile(get_settings(), day))
    counts = " ".join(f"{kind}={n}" for kind, n in summary.counts.items())
    print(
        f"reconciliation {summary.reconciliation_id} {summary.window_start} .. "
        f"{summary.window_end}: {counts}"
    )
    if summary.failed_phases:
        print(f"phases given up after their retries: {' '.join(summary.failed_phases)}")
    return 1 if any(summary.counts.values()) else 0
