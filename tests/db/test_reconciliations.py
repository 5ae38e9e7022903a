"""The reconciliation ledger and the ledger reads, on the real PostgreSQL with migrations applied.

The reconciliation activities are retried after crashes: every write here must be safe to repeat.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.models import ReconciliationFinding
from refunds.db.reconciliations import LedgerScanRepository, ReconciliationRepository
from refunds.domain.errors import ReconciliationNotFound
from refunds.domain.messages import Channel, FindingKind, RefundStatus
from tests.db.ledger_rows import LedgerRows
from tests.factories import uid

Sessions = async_sessionmaker[AsyncSession]
DAY_START = datetime(2026, 1, 1, tzinfo=UTC)


async def open_run(sessionmaker: Sessions, run_key: str | None = None) -> int:
    async with sessionmaker() as session:
        run_id = await ReconciliationRepository(session).open(
            run_key or uid("run"), uid("reconcile"), DAY_START, DAY_START + timedelta(days=1)
        )
        await session.commit()
    return run_id


async def add(sessionmaker: Sessions, run_id: int, kind: FindingKind, subject: str) -> bool:
    async with sessionmaker() as session:
        added = await ReconciliationRepository(session).add_finding(
            run_id, kind, subject, refund_no=subject, channel=Channel.STRIPE, detail={"n": 1}
        )
        await session.commit()
    return added


async def finish(
    sessionmaker: Sessions, run_id: int, summary: str | None = "done"
) -> dict[str, int]:
    async with sessionmaker() as session:
        counts = await ReconciliationRepository(session).finish(run_id, summary)
        await session.commit()
    return counts


async def test_opening_the_same_run_key_twice_returns_the_same_run(sessionmaker: Sessions) -> None:
    run_key = uid("run")
    first = await open_run(sessionmaker, run_key)
    assert await open_run(sessionmaker, run_key) == first
    assert await open_run(sessionmaker) != first


async def test_a_finding_reported_twice_is_recorded_once(sessionmaker: Sessions) -> None:
    run_id = await open_run(sessionmaker)
    subject = uid("rf")
    assert await add(sessionmaker, run_id, FindingKind.MISMATCH, subject) is True
    assert await add(sessionmaker, run_id, FindingKind.MISMATCH, subject) is False
    # Another kind about the same refund is another finding.
    assert await add(sessionmaker, run_id, FindingKind.OVERDUE, subject) is True
    async with sessionmaker() as session:
        rows = await session.scalar(
            select(func.count()).where(ReconciliationFinding.reconciliation_id == run_id)
        )
    assert rows == 2


async def test_finish_counts_every_kind_and_a_second_finish_changes_nothing(
    sessionmaker: Sessions,
) -> None:
    run_id = await open_run(sessionmaker)
    for subject in ("a", "b"):
        await add(sessionmaker, run_id, FindingKind.GATEWAY_SUCCEEDED, subject)
    await add(sessionmaker, run_id, FindingKind.REPAIRED, "c")
    expected = {kind.value: 0 for kind in FindingKind} | {
        FindingKind.GATEWAY_SUCCEEDED.value: 2,
        FindingKind.REPAIRED.value: 1,
    }
    assert await finish(sessionmaker, run_id, "first") == expected
    async with sessionmaker() as session:
        finished_at = (await ReconciliationRepository(session).get(run_id)).finished_at
    assert finished_at is not None

    await add(sessionmaker, run_id, FindingKind.OVERDUE, "late")  # a straggler of a retry
    assert await finish(sessionmaker, run_id, None) == expected
    async with sessionmaker() as session:
        run = await ReconciliationRepository(session).get(run_id)
    assert (run.finished_at, run.summary, run.counts) == (finished_at, "first", expected)


async def test_a_summary_made_of_the_counts_is_written_by_a_second_finish(
    sessionmaker: Sessions,
) -> None:
    run_id = await open_run(sessionmaker)
    await add(sessionmaker, run_id, FindingKind.MISMATCH, "a")
    async with sessionmaker() as session:
        repo = ReconciliationRepository(session)
        counts = await repo.finish(run_id)
        await repo.finish(run_id, f"mismatch={counts[FindingKind.MISMATCH]}")
        await session.commit()
    async with sessionmaker() as session:
        run = await ReconciliationRepository(session).get(run_id)
    assert (run.summary, run.counts) == ("mismatch=1", counts)


async def test_a_run_with_no_findings_finishes_with_zero_of_each(sessionmaker: Sessions) -> None:
    run_id = await open_run(sessionmaker)
    assert await finish(sessionmaker, run_id) == {kind.value: 0 for kind in FindingKind}


async def test_every_finding_kind_and_channel_passes_the_database_checks(
    sessionmaker: Sessions,
) -> None:
    run_id = await open_run(sessionmaker)
    for kind in FindingKind:
        for channel in Channel:
            async with sessionmaker() as session:
                repo = ReconciliationRepository(session)
                assert await repo.add_finding(run_id, kind, str(channel), None, channel, {})
                await session.commit()


@pytest.mark.parametrize("kind, channel", [("lost", "stripe"), ("mismatch", "paypal")])
async def test_a_kind_or_channel_outside_the_enums_is_refused(
    sessionmaker: Sessions, kind: str, channel: str
) -> None:
    run_id = await open_run(sessionmaker)
    async with sessionmaker() as session:
        repo = ReconciliationRepository(session)
        with pytest.raises(IntegrityError):
            await repo.add_finding(run_id, kind, uid("x"), None, channel, {})  # type: ignore[arg-type]


async def test_get_of_an_unknown_run_is_reconciliation_not_found(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        with pytest.raises(ReconciliationNotFound):
            await ReconciliationRepository(session).get(2**62)
        with pytest.raises(ReconciliationNotFound):
            await ReconciliationRepository(session).finish(2**62, None)


async def test_get_has_the_findings_in_the_order_found(sessionmaker: Sessions) -> None:
    run_id = await open_run(sessionmaker)
    await add(sessionmaker, run_id, FindingKind.OVERDUE, "z")
    await add(sessionmaker, run_id, FindingKind.MISMATCH, "a")
    async with sessionmaker() as session:
        run = await ReconciliationRepository(session).get(run_id)
    assert [(f.kind, f.subject) for f in run.findings] == [
        (FindingKind.OVERDUE, "z"),
        (FindingKind.MISMATCH, "a"),
    ]
    assert run.findings[0].detail == {"n": 1}


async def test_pages_are_newest_first_before_the_cursor(sessionmaker: Sessions) -> None:
    ids = [await open_run(sessionmaker) for _ in range(3)]
    async with sessionmaker() as session:
        repo = ReconciliationRepository(session)
        newest = await repo.page(2)
        older = await repo.page(2, before_id=ids[1])
    assert [r.id for r in newest] == [ids[2], ids[1]]
    assert older[0].id == ids[0]


async def test_last_finished_skips_runs_still_going(sessionmaker: Sessions) -> None:
    done = await open_run(sessionmaker)
    await finish(sessionmaker, done)
    await open_run(sessionmaker)  # newer, not finished
    async with sessionmaker() as session:
        last = await ReconciliationRepository(session).last_finished()
    assert last is not None and last.id == done


async def test_non_terminal_lists_pending_processing_and_abnormal_by_id(
    sessionmaker: Sessions,
) -> None:
    async with LedgerRows(sessionmaker) as rows:
        mine = await rows.refunds(*RefundStatus)
        first_id = min(r.id for r in mine)
        async with sessionmaker() as session:
            scan = LedgerScanRepository(session)
            found = await scan.non_terminal(limit=1000, after_id=first_id - 1)
            one = await scan.non_terminal(limit=1, after_id=first_id - 1)
    waiting = {RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING, RefundStatus.ABNORMAL}
    open_ = {r.refund_no for r in mine if r.status in waiting}
    assert {r.refund_no for r in found} & {r.refund_no for r in mine} == open_
    assert [r.id for r in found] == sorted(r.id for r in found)
    assert [r.refund_no for r in one] == [mine[0].refund_no]  # pending_approval comes first


async def test_in_window_takes_refunds_created_in_the_window_of_the_channel(
    sessionmaker: Sessions,
) -> None:
    # Long ago, so no other test's refund falls into the window.
    day = datetime(2001, 2, 3, tzinfo=UTC)
    done = RefundStatus.SUCCEEDED
    async with LedgerRows(sessionmaker) as rows:
        before = await rows.refunds(done, created_at=day - timedelta(microseconds=1))
        inside = await rows.refunds(done, done, created_at=day)
        wechat = await rows.refunds(done, channel=Channel.WECHATPAY, created_at=day)
        at_end = await rows.refunds(done, created_at=day + timedelta(days=1))
        async with sessionmaker() as session:
            scan = LedgerScanRepository(session)
            window = (day, day + timedelta(days=1))
            stripe = await scan.in_window(*window, Channel.STRIPE, limit=10)
            both = await scan.in_window(*window, None, limit=10)
            paged = await scan.in_window(*window, None, limit=10, after_id=inside[0].id)
    assert [r.refund_no for r in stripe] == [r.refund_no for r in inside]
    assert {r.refund_no for r in both} == {r.refund_no for r in inside + wechat}
    assert [r.refund_no for r in paged] == [r.refund_no for r in inside[1:] + wechat]
    assert not {r.refund_no for r in before + at_end} & {r.refund_no for r in both}


async def test_find_many_returns_only_the_refunds_we_have(sessionmaker: Sessions) -> None:
    async with LedgerRows(sessionmaker) as rows:
        mine = await rows.refunds(RefundStatus.PROCESSING, RefundStatus.SUCCEEDED)
        wanted = [r.refund_no for r in mine] + [uid("rf-foreign")]
        async with sessionmaker() as session:
            scan = LedgerScanRepository(session)
            found = await scan.find_many(wanted)
            assert await scan.find_many([]) == {}
    assert {no: r.status for no, r in found.items()} == {
        mine[0].refund_no: RefundStatus.PROCESSING,
        mine[1].refund_no: RefundStatus.SUCCEEDED,
    }
