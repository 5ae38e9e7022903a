"""Prometheus metrics of the API process, and the ledger's gauges read from PostgreSQL per scrape.

The ledger gauges are computed when Prometheus asks, not by a background loop: every API replica
answers from the one database, so any replica's scrape is the truth, and nothing runs between
scrapes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from refunds.db.outbox import OutboxRepository
from refunds.db.reconciliations import LedgerScanRepository, ReconciliationRepository
from refunds.domain.messages import FindingKind, RefundStatus
from refunds.domain.outgoing import DeliveryState

REQUESTS = Counter("refunds_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("refunds_http_request_seconds", "HTTP request latency", ["method", "route"])
WEBHOOKS = Counter("refunds_webhooks_total", "Gateway webhooks", ["gateway", "outcome"])

# Well under Prometheus' default 10 s scrape timeout, so the counters above still get out.
LEDGER_READ_TIMEOUT_SECONDS = 3.0

log = logging.getLogger("refunds.metrics")


@dataclass(frozen=True)
class LedgerSnapshot:
    by_status: dict[RefundStatus, int]
    oldest_open_age: dict[RefundStatus, float]
    last_findings: dict[FindingKind, int]
    last_finished_at: datetime | None
    # Issue 13: endpoints marked failing, and the shops' deliveries per state.
    failing_endpoints: int = 0
    deliveries: dict[DeliveryState, int] = field(default_factory=dict)


async def read_ledger(session: AsyncSession) -> LedgerSnapshot:
    scan = LedgerScanRepository(session)
    await scan.bound_reads(LEDGER_READ_TIMEOUT_SECONDS)
    last = await ReconciliationRepository(session).last_finished()
    counts = last.counts if last else {}
    failing, deliveries = await OutboxRepository(session).counts()
    return LedgerSnapshot(
        by_status=await scan.count_by_status(),
        oldest_open_age=await scan.oldest_open_age_seconds(),
        # Every kind, 0 included: a run stored before a kind existed did not count it.
        last_findings={kind: int(counts.get(kind.value, 0)) for kind in FindingKind},
        last_finished_at=last.finished_at if last else None,
        failing_endpoints=failing,
        deliveries=deliveries,
    )


class LedgerCollector(Collector):
    """One snapshot of the ledger as gauges (a collector, so it registers with nothing global)."""

    def __init__(self, snapshot: LedgerSnapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "refunds_ledger_metrics_up", "1 when the ledger gauges below were read from PostgreSQL"
        )
        up.add_metric([], 1 if self.snapshot else 0)
        yield up
        if self.snapshot is not None:
            yield from _ledger_gauges(self.snapshot)


def _ledger_gauges(snapshot: LedgerSnapshot) -> Iterator[Metric]:
    by_status = GaugeMetricFamily("refunds_by_status", "Refunds per status", labels=["status"])
    for status, count in snapshot.by_status.items():
        by_status.add_metric([status.value], count)
    yield by_status
    oldest = GaugeMetricFamily(
        "refunds_oldest_nonterminal_age_seconds",
        "Age of the oldest refund in each non-terminal status (0 when there is none)",
        labels=["status"],
    )
    for status, age in snapshot.oldest_open_age.items():
        oldest.add_metric([status.value], age)
    yield oldest
    yield from _reconciliation_gauges(snapshot)
    yield from _webhook_gauges(snapshot)


def _webhook_gauges(snapshot: LedgerSnapshot) -> Iterator[Metric]:
    failing = GaugeMetricFamily(
        "refunds_webhook_endpoints_failing",
        "Webhook endpoints whose last delivery ran out of tries: alert when above 0",
    )
    failing.add_metric([], snapshot.failing_endpoints)
    yield failing
    deliveries = GaugeMetricFamily(
        "refunds_webhook_deliveries", "The shops' webhook deliveries per state", labels=["state"]
    )
    for state, count in snapshot.deliveries.items():
        deliveries.add_metric([state.value], count)
    yield deliveries


def _reconciliation_gauges(snapshot: LedgerSnapshot) -> Iterator[Metric]:
    findings = GaugeMetricFamily(
        "reconciliation_last_findings",
        "Findings per kind of the last finished reconciliation run",
        labels=["kind"],
    )
    for kind, count in snapshot.last_findings.items():
        findings.add_metric([kind.value], count)
    yield findings
    finished = GaugeMetricFamily(
        "reconciliation_last_finished_timestamp_seconds",
        "When the last reconciliation run finished (0 when none has): alert when it gets old",
    )
    at = snapshot.last_finished_at
    finished.add_metric([], at.timestamp() if at else 0.0)
    yield finished


async def exposition(session: AsyncSession) -> bytes:
    """This process's metrics, then the ledger's; a database that does not answer costs only
    the ledger gauges (`refunds_ledger_metrics_up 0`), never the whole scrape."""
    try:
        snapshot: LedgerSnapshot | None = await read_ledger(session)
    except SQLAlchemyError as exc:
        log.warning("ledger_metrics_unavailable", extra={"error": type(exc).__name__})
        snapshot = None
    ledger = CollectorRegistry(auto_describe=False)
    ledger.register(LedgerCollector(snapshot))
    return generate_latest() + generate_latest(ledger)
