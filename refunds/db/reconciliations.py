"""Reconciliation runs and their findings, and the ledger reads that reconcile and watch refunds.

Every write is idempotent: the activities that call these are retried after crashes, and a
retried run must open the same row and report each finding once. The caller commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, case, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from refunds.db.models import Order, Reconciliation, ReconciliationFinding, Refund, RefundEvent
from refunds.db.outbox import OutboxRepository
from refunds.domain.errors import ReconciliationNotFound
from refunds.domain.messages import TERMINAL_STATUSES, Channel, FindingKind, RefundStatus

# Derived, not listed: a status added to RefundStatus is open until it is made terminal.
OPEN_STATUSES: tuple[RefundStatus, ...] = tuple(
    s for s in RefundStatus if s not in TERMINAL_STATUSES
)


class ReconciliationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open(
        self, run_key: str, workflow_id: str, window_start: datetime, window_end: datetime
    ) -> int:
        """The run's id; the same id again for the same `run_key` (a retried activity)."""
        stmt = (
            insert(Reconciliation)
            .values(
                run_key=run_key,
                workflow_id=workflow_id,
                window_start=window_start,
                window_end=window_end,
            )
            .on_conflict_do_nothing(index_elements=["run_key"])
            .returning(Reconciliation.id)
        )
        created = (await self.session.execute(stmt)).scalar_one_or_none()
        if created is not None:
            return created
        existing = select(Reconciliation.id).where(Reconciliation.run_key == run_key)
        return (await self.session.execute(existing)).scalar_one()

    async def add_finding(
        self,
        reconciliation_id: int,
        kind: FindingKind,
        subject: str,
        refund_no: str | None = None,
        channel: Channel | None = None,
        detail: dict[str, Any] | None = None,
    ) -> bool:
        """Record a finding; False when this run already reported it (same kind and subject)."""
        stmt = (
            insert(ReconciliationFinding)
            .values(
                reconciliation_id=reconciliation_id,
                kind=kind,
                subject=subject,
                refund_no=refund_no,
                channel=channel,
                detail=detail or {},
            )
            .on_conflict_do_nothing(index_elements=["reconciliation_id", "kind", "subject"])
            .returning(ReconciliationFinding)
        )
        finding = (await self.session.execute(stmt)).scalar_one_or_none()
        if finding is None:
            return False
        # The shops' `reconciliation.finding`, in the transaction of the finding (issue 13).
        await OutboxRepository(self.session).add_finding_event(finding)
        return True

    async def finish(self, reconciliation_id: int, summary: str | None = None) -> dict[str, int]:
        """Close the run with its counts per kind (every kind, 0 included) and return them.

        Counts and `finished_at` are written once: a retry after the first call committed
        returns what that call stored. A summary is kept once given; a later call may add it
        (made of the counts the first call returned)."""
        counts = await self._count_findings(reconciliation_id)
        still_open = Reconciliation.finished_at.is_(None)
        stmt = (
            update(Reconciliation)
            .where(Reconciliation.id == reconciliation_id)
            .values(
                counts=case((still_open, literal(counts, JSONB)), else_=Reconciliation.counts),
                finished_at=func.coalesce(Reconciliation.finished_at, func.now()),
                summary=func.coalesce(literal(summary, Text), Reconciliation.summary),
            )
            .returning(Reconciliation.counts)
        )
        stored = (await self.session.execute(stmt)).scalar_one_or_none()
        if stored is None:
            raise ReconciliationNotFound(f"reconciliation {reconciliation_id} not found")
        return dict(stored)

    async def get(self, reconciliation_id: int) -> Reconciliation:
        """The run with its findings in the order they were found."""
        stmt = (
            select(Reconciliation)
            .where(Reconciliation.id == reconciliation_id)
            .options(selectinload(Reconciliation.findings))
        )
        run = (await self.session.scalars(stmt)).one_or_none()
        if run is None:
            raise ReconciliationNotFound(f"reconciliation {reconciliation_id} not found")
        return run

    async def page(self, limit: int, before_id: int | None = None) -> Sequence[Reconciliation]:
        """Newest first, keyset by id (no findings loaded)."""
        stmt = select(Reconciliation).order_by(Reconciliation.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(Reconciliation.id < before_id)
        return (await self.session.scalars(stmt)).all()

    async def last_finished(self) -> Reconciliation | None:
        stmt = (
            select(Reconciliation)
            .where(Reconciliation.finished_at.is_not(None))
            .order_by(Reconciliation.finished_at.desc(), Reconciliation.id.desc())
            .limit(1)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def _count_findings(self, reconciliation_id: int) -> dict[str, int]:
        stmt = (
            select(ReconciliationFinding.kind, func.count())
            .where(ReconciliationFinding.reconciliation_id == reconciliation_id)
            .group_by(ReconciliationFinding.kind)
        )
        found = {kind: int(n) for kind, n in (await self.session.execute(stmt)).all()}
        return {kind.value: found.get(kind.value, 0) for kind in FindingKind}


class LedgerScanRepository:
    """Reads over the refunds ledger for reconciliation and the scrape-time gauges."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def non_terminal(self, limit: int, after_id: int | None = None) -> Sequence[Refund]:
        """Refunds still waiting (pending approval, processing, abnormal), keyset by id."""
        stmt = (
            select(Refund).where(Refund.status.in_(OPEN_STATUSES)).order_by(Refund.id).limit(limit)
        )
        if after_id is not None:
            stmt = stmt.where(Refund.id > after_id)
        return (await self.session.scalars(stmt)).all()

    async def in_window(
        self,
        start: datetime,
        end: datetime,
        channel: Channel | None,
        limit: int,
        after_id: int | None = None,
    ) -> Sequence[Refund]:
        """Refunds created in [start, end), of one channel or all, keyset by id."""
        stmt = (
            select(Refund)
            .where(Refund.created_at >= start, Refund.created_at < end)
            .order_by(Refund.id)
            .limit(limit)
        )
        if channel is not None:
            stmt = stmt.where(Refund.channel == channel)
        if after_id is not None:
            stmt = stmt.where(Refund.id > after_id)
        return (await self.session.scalars(stmt)).all()

    async def settled_between(
        self,
        start: datetime,
        end: datetime,
        channel: Channel,
        created_before: datetime,
        limit: int,
        after_id: int | None = None,
    ) -> Sequence[Refund]:
        """Refunds of `channel` that became succeeded or failed in [start, end) and were
        created before `created_before` (those of the window itself are read already), keyset
        by id: the look-back for gateways that cannot list what changed."""
        stmt = (
            select(Refund)
            .where(
                Refund.channel == channel,
                Refund.status.in_([RefundStatus.SUCCEEDED, RefundStatus.FAILED]),
                Refund.updated_at >= start,
                Refund.updated_at < end,
                Refund.created_at < created_before,
            )
            .order_by(Refund.id)
            .limit(limit)
        )
        if after_id is not None:
            stmt = stmt.where(Refund.id > after_id)
        return (await self.session.scalars(stmt)).all()

    async def timeline(self, refund_no: str) -> list[str]:
        """The refund's timeline events in order (read only where the gateway disagrees)."""
        stmt = (
            select(RefundEvent.event)
            .where(RefundEvent.refund_no == refund_no)
            .order_by(RefundEvent.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def find_many(self, refund_nos: Collection[str]) -> dict[str, Refund]:
        """The refunds we have among `refund_nos`; the ones we lack are simply absent."""
        if not refund_nos:
            return {}
        stmt = select(Refund).where(Refund.refund_no.in_(list(refund_nos)))
        return {r.refund_no: r for r in (await self.session.scalars(stmt)).all()}

    async def payment_refs(self, order_nos: Collection[str]) -> dict[str, str]:
        """The gateway payment of each of these orders (one query for a page of refunds)."""
        if not order_nos:
            return {}
        stmt = select(Order.order_no, Order.payment_ref).where(Order.order_no.in_(list(order_nos)))
        return {no: ref or "" for no, ref in (await self.session.execute(stmt)).all()}

    async def count_by_status(self) -> dict[RefundStatus, int]:
        """Every status, 0 included: a gauge that vanishes reads as "no data", not as zero."""
        stmt = select(Refund.status, func.count()).group_by(Refund.status)
        found = {status: int(n) for status, n in (await self.session.execute(stmt)).all()}
        return {status: found.get(status.value, 0) for status in RefundStatus}

    async def oldest_open_age_seconds(self) -> dict[RefundStatus, float]:
        """Per open status, how long its oldest refund has existed (0 when none), by the
        database clock so the API host's clock cannot skew it."""
        age = func.extract("epoch", func.now() - func.min(Refund.created_at))
        stmt = (
            select(Refund.status, age)
            .where(Refund.status.in_(OPEN_STATUSES))
            .group_by(Refund.status)
        )
        found = {status: float(s) for status, s in (await self.session.execute(stmt)).all()}
        return {status: found.get(status.value, 0.0) for status in OPEN_STATUSES}

    async def bound_reads(self, seconds: float) -> None:
        """Cap each statement of this transaction: a scrape must answer within its timeout."""
        await self.session.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"),
            {"ms": str(int(seconds * 1000))},
        )
