"""`refunds reconcile` and `refunds schedules apply` against the running stack (issue 9)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, ScheduleActionStartWorkflow

from refunds.domain.messages import FindingKind
from refunds.runtime.schedules import RECONCILIATION_SCHEDULE, RUN_LIMIT
from tests.stack import Stack, settings_env


def refunds(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(stack.settings)}
    return subprocess.run(
        [sys.executable, "-m", "refunds.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_reconcile_prints_the_counts_of_a_run_it_records(
    stack: Stack, temporal: Client
) -> None:
    today = datetime.now(UTC).date().isoformat()
    done = refunds(stack, "reconcile", "--date", today)
    # 0: nothing found; 1: findings (other tests leave some). The command ends with os._exit,
    # so sdk-python#300's abort at interpreter exit cannot turn either into 134.
    assert done.returncode in (0, 1), done.stderr
    line = re.search(r"reconciliation (\d+) (\S+) \.\. (\S+): (.*)", done.stdout)
    assert line, done.stdout + done.stderr
    assert line.group(2).startswith(today)
    counts = dict(pair.split("=") for pair in line.group(4).split())
    assert set(counts) == {kind.value for kind in FindingKind}
    assert {"gateway_succeeded_after_failure", "lookup_failed", "adjudicated"} <= set(counts)
    assert (done.returncode == 1) == any(int(n) for n in counts.values())


async def test_schedules_apply_twice_leaves_one_schedule_matching_the_settings(
    stack: Stack, temporal: Client
) -> None:
    first, second = refunds(stack, "schedules", "apply"), refunds(stack, "schedules", "apply")
    assert "refunds-reconciliation" in first.stdout, first.stderr
    assert "updated" in second.stdout, second.stderr
    described = await temporal.get_schedule_handle(RECONCILIATION_SCHEDULE).describe()
    calendar = described.schedule.spec.calendars[0]
    assert (calendar.hour[0].start, calendar.minute[0].start) == (3, 0)
    assert described.schedule.spec.time_zone_name == "UTC"
    # A run that hangs ends before the next day's is due (the overlap policy would skip it).
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.execution_timeout == RUN_LIMIT < timedelta(days=1)
