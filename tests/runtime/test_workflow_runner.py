"""The workers' sandbox runner (refunds/runtime/workflow_runner.py): still Temporal's sandbox,
refusing non-deterministic calls and running each workflow's module afresh, on code compiled
once; and with no serialization context asked for while the data converter ignores contexts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import (
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from refunds.domain.task_queues import webhook_task_queue
from refunds.gateways.registry import build_gateways
from refunds.runtime.workflow_runner import (
    ContextFreeSandboxRunner,
    _CompiledOnceLoader,
    ignores_context,
    workflow_runner,
)
from refunds.settings import Settings
from tests.runtime import sandbox_probes
from tests.runtime.sandbox_probes import ClockReadingProbe, ModuleStateProbe
from worker import build_workers

PROBES = [ModuleStateProbe, ClockReadingProbe]


class WorkflowKeyedCodec(PayloadCodec, WithSerializationContext):
    """A codec that takes the workflow's context (as one keyed by workflow id would)."""

    def __init__(self, workflow_id: str | None = None) -> None:
        self.workflow_id = workflow_id

    def with_context(self, context: SerializationContext) -> WorkflowKeyedCodec:
        return WorkflowKeyedCodec(getattr(context, "workflow_id", None))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


def probe_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=PROBES,
        workflow_runner=workflow_runner(client.data_converter, PROBES),
    )


async def first_task_failure(handle: WorkflowHandle[Any, Any]) -> str:
    """The message of the run's first failed workflow task, once it has one."""
    for _ in range(150):
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return event.workflow_task_failed_event_attributes.failure.message
        await asyncio.sleep(0.2)
    raise AssertionError("no workflow task failed")


def test_the_default_converter_ignores_contexts_and_gets_the_context_free_runner() -> None:
    assert ignores_context(DataConverter.default)
    assert isinstance(workflow_runner(DataConverter.default, PROBES), ContextFreeSandboxRunner)


def test_a_converter_that_takes_contexts_keeps_the_sdks_sandbox_runner() -> None:
    keyed = DataConverter(payload_codec=WorkflowKeyedCodec())
    assert not ignores_context(keyed)
    runner = workflow_runner(keyed, PROBES)
    assert type(runner) is SandboxedWorkflowRunner


async def test_the_sandbox_still_refuses_a_non_deterministic_call(temporal_address: str) -> None:
    client = await Client.connect(temporal_address)
    task_queue = f"sandbox-probe-{uuid.uuid4().hex[:8]}"
    async with probe_worker(client, task_queue):
        handle = await client.start_workflow(
            ClockReadingProbe.run, id=f"clock-probe-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        try:
            message = await first_task_failure(handle)
        finally:
            await handle.terminate("probe done")
    assert message.startswith("Cannot access datetime.datetime.now")


async def test_each_run_executes_its_module_afresh_on_code_compiled_once(
    temporal_address: str,
) -> None:
    client = await Client.connect(temporal_address)
    task_queue = f"sandbox-probe-{uuid.uuid4().hex[:8]}"
    async with probe_worker(client, task_queue):
        runs = [
            await client.execute_workflow(
                ModuleStateProbe.run,
                id=f"state-probe-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            for _ in range(3)
        ]
    # Module state never carries from one run to the next.
    assert [count for count, _ in runs] == [1, 1, 1]
    # Every run executed the one code object the process compiled for the probe's source: the
    # cache holds it, so no other object can have had its id.
    path = str(Path(sandbox_probes.__file__))
    cached = [code for (at, _), code in _CompiledOnceLoader._code.items() if at == path]
    assert len(cached) == 1
    marker_code = next(c for c in cached[0].co_consts if getattr(c, "co_name", "") == "marker")
    assert {code_id for _, code_id in runs} == {id(marker_code)}


async def test_the_workers_run_their_workflows_with_the_context_free_runner(
    temporal_address: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    database_url: str,
) -> None:
    client = await Client.connect(temporal_address)
    settings = Settings(data_dir=tmp_path, dev_secrets=True, database_url=database_url)
    workers = build_workers(client, settings, sessionmaker, build_gateways(settings))
    runners = {
        worker.task_queue: worker.config()["workflow_runner"]  # type: ignore[typeddict-item]
        for worker in workers
        if worker.config()["workflows"]
    }
    assert runners.keys() == {settings.task_queue, webhook_task_queue(settings.task_queue)}
    assert all(isinstance(r, ContextFreeSandboxRunner) for r in runners.values())
