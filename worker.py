"""The refunds worker: wires clients into activities and runs them with the workflow.

`python worker.py` or `refunds worker`; run any number of replicas against one task queue.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.gateway import GatewayActivities
from activities.ledger import LedgerActivities
from activities.reconciliation import ReconciliationActivities
from activities.restore import RestoreActivities
from refunds.db.engine import make_engine, make_sessionmaker
from refunds.domain.messages import Channel
from refunds.gateways.base import Gateway
from refunds.runtime.logging import configure
from refunds.runtime.temporal_client import connect, ensure_search_attributes
from refunds.settings import Settings, get_settings
from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund_v1 import RefundWorkflow


def activities(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateways: Mapping[Channel, Gateway],
    client: Client,
    settings: Settings,
) -> list[Callable[..., Any]]:
    """Every activity the workflows schedule (by the names in `domain.activity_names`)."""
    ledger = LedgerActivities(sessionmaker)
    restore = RestoreActivities(sessionmaker)
    gateway = GatewayActivities(gateways)
    reconciliation = ReconciliationActivities(sessionmaker, gateways, client, settings)
    return [
        ledger.apply_refund,
        ledger.claim_refund,
        ledger.transition,
        ledger.record_event,
        restore.restore_points,
        restore.restore_inventory,
        restore.release_coupon,
        restore.reverse_restores,
        gateway.create_gateway_refund,
        gateway.get_gateway_refund,
        reconciliation.open_reconciliation,
        reconciliation.reconcile_step,
        reconciliation.close_reconciliation,
    ]


def build_worker(
    client: Client,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    gateways: Mapping[Channel, Gateway],
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RefundWorkflow, ReconciliationWorkflow],
        activities=activities(sessionmaker, gateways, client, settings),
        max_concurrent_activities=200,
    )


async def run_worker(settings: Settings) -> None:
    from refunds.gateways.registry import build_gateways

    if settings.database_url is None:
        raise SystemExit("REFUNDS_DATABASE_URL is not set (refunds dev sets it for you)")
    client = await connect(settings, metrics_port=settings.worker_metrics_port)
    # Refused on Temporal Cloud: logged with the command ops run once, and the worker goes on.
    await ensure_search_attributes(client, client.namespace)
    engine = make_engine(settings.database_url)
    worker = build_worker(client, settings, make_sessionmaker(engine), build_gateways(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()
    await engine.dispose()


def main() -> None:
    settings = get_settings()
    configure(settings.log_level)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
