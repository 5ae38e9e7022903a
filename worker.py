"""The refunds worker: wires clients into activities and runs them with the workflows.

`python worker.py` or `refunds worker`; run any number of replicas. Each process polls the main
task queue (workflows, ledger and restore steps) and one queue per payment channel for the
gateway calls, whose rate Temporal holds for all replicas together.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.gateway import GatewayActivities
from activities.ledger import LedgerActivities
from activities.reconciliation import ReconciliationActivities
from activities.restore import RestoreActivities
from activities.webhooks import WebhookActivities
from refunds.db.engine import make_engine, make_sessionmaker
from refunds.db.outbox import WebhookEndpointRepository
from refunds.db.sealing import configure_sealing
from refunds.domain.decision_signing import trust
from refunds.domain.messages import Channel
from refunds.domain.task_queues import gateway_task_queue, webhook_task_queue
from refunds.gateways.base import Gateway
from refunds.runtime.logging import configure
from refunds.runtime.temporal_client import connect, ensure_search_attributes
from refunds.runtime.webhook_relay import TemporalRelay, wake_quietly
from refunds.runtime.workflow_runner import workflow_runner
from refunds.settings import Settings, get_settings
from workflows.payment_check import PaymentCheckWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund import RefundWorkflow
from workflows.refund_v1 import RefundWorkflowV1
from workflows.webhook_delivery import WebhookEndpointDelivery


def activities(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateways: Mapping[Channel, Gateway],
    client: Client,
    settings: Settings,
) -> list[Callable[..., Any]]:
    """The activities of the main task queue: the refund workflow's ledger and restore steps,
    reconciliation, and every activity the first workflow type schedules, until it drains."""
    # Steps that commit outgoing events wake the endpoints' delivery workflows (issue 13).
    relay = TemporalRelay(client, settings)
    ledger = LedgerActivities(sessionmaker, relay)
    restore = RestoreActivities(sessionmaker, relay=relay)
    first_type_gateway = GatewayActivities(gateways)
    reconciliation = ReconciliationActivities(sessionmaker, gateways, client, settings, relay)
    return [
        ledger.open_refund,
        ledger.claim_refund_run,
        ledger.record_step,
        restore.complete_refund,
        restore.take_back_restores,
        reconciliation.open_reconciliation,
        reconciliation.reconcile_step,
        reconciliation.close_reconciliation,
        # RefundWorkflow (workflows/refund_v1.py) runs: design §4, "Two workflow types".
        ledger.apply_refund,
        ledger.claim_refund,
        ledger.transition,
        ledger.record_event,
        restore.restore_points,
        restore.restore_inventory,
        restore.release_coupon,
        restore.reverse_restores,
        first_type_gateway.create_gateway_refund,
        first_type_gateway.get_gateway_refund,
    ]


def gateway_activities(
    sessionmaker: async_sessionmaker[AsyncSession], gateways: Mapping[Channel, Gateway]
) -> list[Callable[..., Any]]:
    """The activities of each channel's gateway queue."""
    calls = GatewayActivities(gateways, sessionmaker)
    return [calls.refund_at_gateway, calls.look_up_at_gateway, calls.read_payment]


def gateway_rate(settings: Settings, channel: Channel) -> float:
    """Requests per second the whole fleet may send to this channel's gateway."""
    if channel == Channel.STRIPE:
        return float(settings.stripe_rate_limit)
    return float(settings.wechatpay_rate_limit)


# The gateway clients are synchronous (stripe and wechatpayv3 over requests): a running call
# holds a thread of the loop's default executor. Python's default pool (cores + 4 threads: 6
# here) made the gateway queues' activity slots wait for a thread, and when a gateway stalled the
# waiting calls hit their timeout, were retried, and waited again behind threads still busy with
# calls already timed out (seen under `refunds chaos`: refunds went abnormal with the gateway
# answering). So each slot has a thread, twice over for the calls of timed-out activities that
# are still draining, and a few spare for reconciliation's calls and the loop's own lookups.
GATEWAY_CALLS_PER_CHANNEL = 32
SPARE_THREADS = 8


def gateway_executor() -> ThreadPoolExecutor:
    """The worker's default executor: a thread for every gateway call that may run at once."""
    threads = 2 * GATEWAY_CALLS_PER_CHANNEL * len(Channel) + SPARE_THREADS
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gateway-call")


def build_workers(
    client: Client,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    gateways: Mapping[Channel, Gateway],
) -> list[Worker]:
    refund_workflows = [
        RefundWorkflow,
        RefundWorkflowV1,
        ReconciliationWorkflow,
        PaymentCheckWorkflow,
    ]
    # The refund workflows take people's decisions only when signed with these.
    trust([settings.decision_key, settings.decision_previous_key])
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=refund_workflows,
        activities=activities(sessionmaker, gateways, client, settings),
        max_concurrent_activities=200,
        workflow_runner=workflow_runner(client.data_converter, refund_workflows),
    )
    per_channel = [
        Worker(
            client,
            task_queue=gateway_task_queue(settings.task_queue, channel),
            activities=gateway_activities(sessionmaker, gateways),
            max_concurrent_activities=GATEWAY_CALLS_PER_CHANNEL,
            # Enforced by the Temporal server for the queue, whatever the number of workers.
            max_task_queue_activities_per_second=gateway_rate(settings, channel),
        )
        for channel in Channel
    ]
    deliveries = WebhookActivities(sessionmaker, settings.webhook_allow_private_targets)
    webhooks = Worker(
        client,
        task_queue=webhook_task_queue(settings.task_queue),
        workflows=[WebhookEndpointDelivery],
        activities=[
            deliveries.pending_lanes,
            deliveries.deliver_event,
            deliveries.give_up_delivery,
        ],
        max_concurrent_activities=100,
        workflow_runner=workflow_runner(client.data_converter, [WebhookEndpointDelivery]),
    )
    return [main, *per_channel, webhooks]


async def wake_endpoints(
    client: Client, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """At start, every enabled endpoint's delivery workflow runs (started if it was not)."""
    async with sessionmaker() as session:
        ids = await WebhookEndpointRepository(session).enabled_ids()
    await wake_quietly(client, settings, ids)


async def run_worker(settings: Settings) -> None:
    from refunds.gateways.registry import build_gateways

    if settings.database_url is None:
        raise SystemExit("REFUNDS_DATABASE_URL is not set (refunds dev sets it for you)")
    client = await connect(settings, metrics_port=settings.worker_metrics_port)
    # Refused on Temporal Cloud: logged with the command ops run once, and the worker goes on.
    await ensure_search_attributes(client, client.namespace)
    configure_sealing(settings.sealing_keys())
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    workers = build_workers(client, settings, sessionmaker, build_gateways(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(gateway_executor())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        await wake_endpoints(client, settings, sessionmaker)
        await stop.wait()
    await engine.dispose()


def main() -> None:
    settings = get_settings()
    configure(settings.log_level)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
