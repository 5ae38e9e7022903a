"""The ledger's gauges on /metrics, read from PostgreSQL at scrape time.

Other tests' refunds share the database, and their workflows may still be moving them: counts are
asserted as deltas over a quiet ledger, ages on refunds older than any other test's.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.reconciliations import ReconciliationRepository
from refunds.domain.messages import FindingKind, RefundStatus
from refunds.embedded.ports import free_port
from tests.db.ledger_rows import LedgerRows
from tests.factories import Shop, uid

Sessions = async_sessionmaker[AsyncSession]
Gauges = dict[str, dict[str, float]]


async def scrape(http: httpx.AsyncClient) -> Gauges:
    """Every single-label gauge of /metrics: name -> label value -> value."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    gauges: Gauges = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            label = next(iter(sample.labels.values()), "")
            gauges.setdefault(sample.name, {})[label] = sample.value
    return gauges


async def quiet_counts(http: httpx.AsyncClient, timeout: float = 30) -> dict[str, float]:
    """`refunds_by_status` once two scrapes in a row agree: earlier tests' workflows settled."""
    deadline = time.monotonic() + timeout
    last = (await scrape(http))["refunds_by_status"]
    while True:
        await asyncio.sleep(0.5)
        now = (await scrape(http))["refunds_by_status"]
        if now == last or time.monotonic() > deadline:
            return now
        last = now


async def test_refunds_by_status_counts_every_status(
    http: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    # A different number per status, so a count under the wrong label shows.
    wanted = {status: n + 1 for n, status in enumerate(RefundStatus)}
    before = await quiet_counts(http)
    assert set(before) == {status.value for status in RefundStatus}
    async with LedgerRows(sessionmaker) as rows:
        for status, n in wanted.items():
            await rows.refunds(*[status] * n)
        after = (await scrape(http))["refunds_by_status"]
    assert {s: after[s] - before[s] for s in after} == {s.value: n for s, n in wanted.items()}
    assert (await scrape(http))["refunds_ledger_metrics_up"] == {"": 1.0}


async def test_oldest_nonterminal_age_is_the_age_of_the_oldest_open_refund(
    http: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    # Older than anything another test writes; terminal ones older still must not count.
    long_ago = datetime.now(UTC) - timedelta(days=20 * 365)
    open_ = {
        RefundStatus.PENDING_APPROVAL: timedelta(0),
        RefundStatus.PROCESSING: timedelta(days=1),
        RefundStatus.ABNORMAL: timedelta(days=2),
    }
    async with LedgerRows(sessionmaker) as rows:
        for status, older in open_.items():
            await rows.refunds(status, created_at=long_ago - older)
            await rows.refunds(status, created_at=long_ago + timedelta(days=1))
        await rows.refunds(RefundStatus.SUCCEEDED, created_at=long_ago - timedelta(days=99))
        started = datetime.now(UTC)
        ages = (await scrape(http))["refunds_oldest_nonterminal_age_seconds"]
        finished = datetime.now(UTC)
    assert set(ages) == {status.value for status in open_}
    for status, older in open_.items():
        low = (started - (long_ago - older)).total_seconds() - 5  # the clocks may differ a bit
        high = (finished - (long_ago - older)).total_seconds() + 5
        assert low <= ages[status] <= high, status


async def test_reconciliation_last_findings_are_the_last_finished_runs_counts(
    http: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    found = [(FindingKind.MISMATCH, "a"), (FindingKind.MISMATCH, "b"), (FindingKind.OVERDUE, "a")]
    async with sessionmaker() as session:
        repo = ReconciliationRepository(session)
        run_id = await repo.open(uid("run"), uid("reconcile"), datetime.now(UTC), datetime.now(UTC))
        for kind, subject in found:
            await repo.add_finding(run_id, kind, subject)
        await repo.finish(run_id, "three")
        await repo.open(uid("run"), uid("reconcile"), datetime.now(UTC), datetime.now(UTC))
        await session.commit()  # the unfinished run above is newer, and does not count
    gauges = await scrape(http)
    assert gauges["reconciliation_last_findings"] == {kind.value: 0.0 for kind in FindingKind} | {
        FindingKind.MISMATCH.value: 2.0,
        FindingKind.OVERDUE.value: 1.0,
    }
    finished_at = gauges["reconciliation_last_finished_timestamp_seconds"][""]
    assert abs(finished_at - time.time()) < 60


async def test_a_database_that_does_not_answer_costs_only_the_ledger_gauges(shop: Shop) -> None:
    closed = f"postgresql://refunds@127.0.0.1:{free_port()}/refunds"
    api = shop.stack.api(shop.stack.settings.model_copy(update={"database_url": closed}))
    async with httpx.AsyncClient(base_url=api, timeout=30) as other:
        await other.get("/healthz")
        gauges = await scrape(other)
    assert gauges["refunds_ledger_metrics_up"] == {"": 0.0}
    assert "refunds_by_status" not in gauges
    assert any(name.startswith("refunds_http_requests") for name in gauges)
