"""The bare workflow's worker, a process of its own, so the bench reads its CPU apart:
`python -m refunds.bench.bare_worker --temporal-address HOST:PORT --task-queue Q`.

Configured as `worker.py` configures the product's worker (the same workflow sandbox runner, the
same activity slots), so the two differ only in what their workflows do.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from refunds.bench.bare_workflow import BareWorkflow, bare_step
from refunds.runtime.temporal_client import data_converter
from refunds.runtime.workflow_runner import workflow_runner
from refunds.settings import Settings


async def serve(address: str, namespace: str, task_queue: str) -> None:
    # The product's data converter (its payload keys from the environment, as the product's
    # worker reads them), as its runner: the two compare workflows, not converters.
    converter = data_converter(Settings())
    client = await Client.connect(address, namespace=namespace, data_converter=converter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BareWorkflow],
        activities=[bare_step],
        max_concurrent_activities=200,
        workflow_runner=workflow_runner(client.data_converter, [BareWorkflow]),
    )
    async with worker:
        print(f"bare worker polling {task_queue}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m refunds.bench.bare_worker")
    parser.add_argument("--temporal-address", required=True, help="Temporal frontend host:port")
    parser.add_argument("--namespace", default="default", help="(default: %(default)s)")
    parser.add_argument("--task-queue", required=True, help="the bare workflows' task queue")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.temporal_address, args.namespace, args.task_queue))


if __name__ == "__main__":
    main()
