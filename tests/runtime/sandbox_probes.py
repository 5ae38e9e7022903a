"""Workflows that probe the workers' sandbox (`test_workflow_runner.py`): one reads the clock as
a workflow must not, one tells whether its module ran afresh and on which compiled code."""

from __future__ import annotations

import datetime

from temporalio import workflow

RUNS = 0  # this module's runs since it was executed: 1 in every run of a sandbox that isolates


def marker() -> None:
    """Its code object is a constant of this module's code: the same one in two runs only if
    both executed the same compiled module."""


@workflow.defn
class ModuleStateProbe:
    @workflow.run
    async def run(self) -> list[int]:
        global RUNS
        RUNS += 1
        return [RUNS, id(marker.__code__)]


@workflow.defn
class ClockReadingProbe:
    @workflow.run
    async def run(self) -> str:
        # Non-deterministic: the sandbox must refuse it (the workflow's clock is workflow.now()).
        return datetime.datetime.now().isoformat()
