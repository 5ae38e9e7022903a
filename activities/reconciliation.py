"""Reconciliation: compare the gateways' refunds with the ledger, act where it is safe,
report the rest.

Money never moves here: a refund the gateway settled is told to its own workflow (signal, or a
repair run when its workflow was closed under it), which then finishes it the usual way. Each
step is a bounded slice of pages that heartbeats its cursor, so a retried step resumes at the
page it had reached; findings are unique per run, kind and subject, so a resumed run reports
each once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.errors import business_errors
from activities.gateway import record_gateway_answer
from activities.outbox import Relay, outbox_transaction
from refunds.db.models import Refund
from refunds.db.reconciliations import LedgerScanRepository, ReconciliationRepository
from refunds.db.repositories import RefundRepository
from refunds.domain import activity_names as names
from refunds.domain.matching import gateway_mismatch
from refunds.domain.messages import (
    Channel,
    FindingKind,
    GatewayLookup,
    GatewayNotification,
    GatewayRefund,
    GatewayStatus,
    ReconcileProgress,
    ReconcileStep,
    ReconciliationInput,
    ReconciliationOpened,
    ReconciliationSummary,
    RefundStatus,
)
from refunds.domain.reconciliation import WAITING, Verdict, day_window, overdue_by, verdict
from refunds.domain.reconciliation import adjudicated as is_adjudicated
from refunds.gateways.base import Gateway, ListsFailedRefunds, ListsRefunds
from refunds.runtime.refund_runs import deliver, is_running, repair
from refunds.settings import Settings

log = logging.getLogger("refunds.reconciliation")

PAGE = 100
PAGES_PER_STEP = 10
OPEN = (RefundStatus.PENDING_APPROVAL, *WAITING)


class ReconciliationActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        gateways: Mapping[Channel, Gateway],
        client: Client,
        settings: Settings,
        relay: Relay | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.gateways = gateways
        self.client = client
        self.settings = settings
        self.relay = relay

    @activity.defn(name=names.OPEN_RECONCILIATION)
    @business_errors
    async def open_reconciliation(self, request: ReconciliationInput) -> ReconciliationOpened:
        """The run's row (the same one when retried) and its window."""
        start, end = day_window(request.day, request.time_zone, datetime.now(UTC))
        info = activity.info()
        async with self.sessionmaker.begin() as session:
            rec_id = await ReconciliationRepository(session).open(
                info.workflow_run_id or "", info.workflow_id or "", start, end
            )
        return ReconciliationOpened(rec_id, start.isoformat(), end.isoformat())

    @activity.defn(name=names.RECONCILE_STEP)
    @business_errors
    async def reconcile_step(self, step: ReconcileStep) -> ReconcileProgress:
        """Up to PAGES_PER_STEP pages of one phase, from the cursor the last attempt reached."""
        details = activity.info().heartbeat_details
        cursor = str(details[0]) if details and details[0] else step.cursor
        seen = findings = 0
        for _ in range(PAGES_PER_STEP):
            cursor, page_seen, page_findings = await self._page(step, cursor)
            seen, findings = seen + page_seen, findings + page_findings
            activity.heartbeat(cursor)
            if cursor is None:
                break
        return ReconcileProgress(cursor, seen, findings)

    @activity.defn(name=names.CLOSE_RECONCILIATION)
    @business_errors
    async def close_reconciliation(self, opened: ReconciliationOpened) -> ReconciliationSummary:
        for phase in opened.failed_phases:
            await self._report(
                opened.reconciliation_id,
                FindingKind.LOOKUP_FAILED,
                f"phase:{phase}",
                None,
                None,
                {"phase": phase, "reason": "its step still failed after every retry"},
            )
        async with self.sessionmaker.begin() as session:
            repo = ReconciliationRepository(session)
            counts = await repo.finish(opened.reconciliation_id)
            # The summary is made of the counts: written by a second (idempotent) finish.
            await repo.finish(opened.reconciliation_id, _summary(counts))
        log.info(
            "reconciliation_finished",
            extra={"reconciliation_id": opened.reconciliation_id, "counts": counts},
        )
        return ReconciliationSummary(
            opened.reconciliation_id,
            opened.window_start,
            opened.window_end,
            dict(counts),
            list(opened.failed_phases),
        )

    # ---- phases -------------------------------------------------------------------------------

    async def _page(self, step: ReconcileStep, cursor: str | None) -> tuple[str | None, int, int]:
        if step.phase == "gateway":
            return await self._gateway_page(step, cursor)
        if step.phase == "open":
            return await self._open_page(step, cursor)
        if step.phase == "stripe_failures":
            return await self._stripe_failures_page(step, cursor)
        if step.phase == "wechat_lookback":
            return await self._wechat_lookback_page(step, cursor)
        return await self._wechat_window_page(step, cursor)

    async def _gateway_page(
        self, step: ReconcileStep, cursor: str | None
    ) -> tuple[str | None, int, int]:
        """Stripe lists refunds by `created`: every one of the window, ours or not."""
        stripe = self.gateways.get(Channel.STRIPE)
        if not isinstance(stripe, ListsRefunds):
            return None, 0, 0
        start = int(datetime.fromisoformat(step.window_start).timestamp())
        end = int(datetime.fromisoformat(step.window_end).timestamp())
        page = await stripe.list_refunds(start, end, cursor, PAGE)
        found = await self._compare_listed(step.reconciliation_id, page.refunds, cursor)
        return page.next_cursor, len(page.refunds), found

    async def _stripe_failures_page(
        self, step: ReconcileStep, cursor: str | None
    ) -> tuple[str | None, int, int]:
        """Stripe's refunds that failed in the window, whatever day they were created: a
        refund that succeeded last week and failed yesterday is neither in the window's list
        nor open, and its `refund.failed` webhook may have been lost."""
        stripe = self.gateways.get(Channel.STRIPE)
        if not isinstance(stripe, ListsFailedRefunds):
            return None, 0, 0
        start = int(datetime.fromisoformat(step.window_start).timestamp())
        end = int(datetime.fromisoformat(step.window_end).timestamp())
        page = await stripe.list_failed_refunds(start, end, cursor, PAGE)
        found = await self._compare_listed(step.reconciliation_id, page.refunds, cursor)
        return page.next_cursor, len(page.refunds), found

    async def _compare_listed(
        self, rec_id: int, listed: list[GatewayRefund], cursor: str | None
    ) -> int:
        """A page of Stripe's refunds, each carrying our refund_no, against its ledger row."""
        ours = [r for r in listed if r.refund_no]
        async with self.sessionmaker() as session:
            scan = LedgerScanRepository(session)
            rows = await scan.find_many([r.refund_no for r in ours])
            payments = await scan.payment_refs({row.order_no for row in rows.values()})
        found = 0
        for gateway_refund in ours:
            activity.heartbeat(cursor)
            row = rows.get(gateway_refund.refund_no)
            payment = payments.get(row.order_no, "") if row else ""
            found += await self._compare(rec_id, Channel.STRIPE, row, gateway_refund, payment)
        return found

    async def _open_page(
        self, step: ReconcileStep, cursor: str | None
    ) -> tuple[str | None, int, int]:
        """Every refund not yet terminal, whatever its age: closed workflows, silent gateways,
        refunds waiting too long."""
        async with self.sessionmaker() as session:
            scan = LedgerScanRepository(session)
            rows = await scan.non_terminal(PAGE, int(cursor) if cursor else None)
            payments = await scan.payment_refs({row.order_no for row in rows})
        found = 0
        for row in rows:
            activity.heartbeat(cursor)
            payment = payments.get(row.order_no, "")
            found += await self._check_open(step.reconciliation_id, row, payment)
        return (str(rows[-1].id) if len(rows) == PAGE else None), len(rows), found

    async def _wechat_window_page(
        self, step: ReconcileStep, cursor: str | None
    ) -> tuple[str | None, int, int]:
        """WeChat Pay has no list: each of our refunds of the window is queried by refund_no."""
        async with self.sessionmaker() as session:
            scan = LedgerScanRepository(session)
            rows = await scan.in_window(
                datetime.fromisoformat(step.window_start),
                datetime.fromisoformat(step.window_end),
                Channel.WECHATPAY,
                PAGE,
                int(cursor) if cursor else None,
            )
            payments = await scan.payment_refs({row.order_no for row in rows})
        found = await self._query_each(step.reconciliation_id, rows, payments, cursor)
        return (str(rows[-1].id) if len(rows) == PAGE else None), len(rows), found

    async def _wechat_lookback_page(
        self, step: ReconcileStep, cursor: str | None
    ) -> tuple[str | None, int, int]:
        """Our WeChat Pay refunds of earlier days that finished within the look-back: WeChat
        has no list of what changed, so they are asked again (an ABNORMAL refund ops failed
        may have been settled offline since)."""
        start = datetime.fromisoformat(step.window_start)
        end = datetime.fromisoformat(step.window_end)
        since = end - max(self.settings.reconciliation_lookback, timedelta(0))
        async with self.sessionmaker() as session:
            scan = LedgerScanRepository(session)
            rows = await scan.settled_between(
                since, end, Channel.WECHATPAY, start, PAGE, int(cursor) if cursor else None
            )
            payments = await scan.payment_refs({row.order_no for row in rows})
        found = await self._query_each(step.reconciliation_id, rows, payments, cursor)
        return (str(rows[-1].id) if len(rows) == PAGE else None), len(rows), found

    async def _query_each(
        self, rec_id: int, rows: Sequence[Refund], payments: Mapping[str, str], cursor: str | None
    ) -> int:
        found = 0
        for row in rows:
            activity.heartbeat(cursor)
            payment = payments.get(row.order_no, "")
            asked = await self._ask(rec_id, row, payment)
            found += asked.findings
            if asked.refund is not None:
                found += await self._compare(
                    rec_id, Channel(row.channel), row, asked.refund, payment
                )
        return found

    # ---- what a refund tells us ---------------------------------------------------------------

    async def _compare(
        self,
        rec_id: int,
        channel: Channel,
        row: Refund | None,
        at_gateway: GatewayRefund,
        payment_ref: str,
    ) -> int:
        """One gateway refund carrying our refund_no against its ledger row and the payment of
        its order (read once per page by the caller)."""
        if row is None:
            return await self._report(
                rec_id,
                FindingKind.MISMATCH,
                at_gateway.gateway_refund_id,
                at_gateway.refund_no,
                channel,
                {"reason": "the gateway has a refund under this refund_no; the ledger has none"}
                | _gateway_detail(at_gateway),
            )
        why = gateway_mismatch(
            row.amount,
            payment_ref,
            at_gateway.amount,
            at_gateway.payment_ref,
            currency=row.currency,
            seen_currency=at_gateway.currency,
        )
        if why is not None:
            return await self._report(
                rec_id,
                FindingKind.MISMATCH,
                row.refund_no,
                row.refund_no,
                channel,
                {"reason": why} | _gateway_detail(at_gateway),
            )
        found = await self._verdict(row, at_gateway.status)
        if found.kind is None:
            return 0
        if found.deliver:
            return await self._tell(rec_id, row, at_gateway, found.kind, payment_ref)
        detail = {"action": "reported", "ledger_status": row.status}
        if found.reason:
            detail["reason"] = found.reason
        return await self._report(
            rec_id,
            found.kind,
            row.refund_no,
            row.refund_no,
            channel,
            detail | _gateway_detail(at_gateway),
        )

    async def _verdict(self, row: Refund, at_gateway: GatewayStatus) -> Verdict:
        """The table's answer; the timeline is read only where ops' earlier decision would
        change it (a terminal refund the gateway disagrees with)."""
        ledger = RefundStatus(row.status)
        plain = verdict(ledger, at_gateway, is_adjudicated=False)
        if plain == verdict(ledger, at_gateway, is_adjudicated=True):
            return plain
        async with self.sessionmaker() as session:
            timeline = await LedgerScanRepository(session).timeline(row.refund_no)
        return verdict(ledger, at_gateway, is_adjudicated(timeline))

    async def _check_open(self, rec_id: int, row: Refund, payment_ref: str) -> int:
        found = 0
        if not await is_running(self.client, row.refund_no):
            found += await self._repair(rec_id, row)
        elif RefundStatus(row.status) in WAITING:
            asked = await self._ask(rec_id, row, payment_ref)
            found += asked.findings
            if asked.refund is not None:
                found += await self._compare(
                    rec_id, Channel(row.channel), row, asked.refund, payment_ref
                )
        now = datetime.now(UTC)
        if overdue_by(row.status, row.updated_at, now, self.settings.overdue_after()):
            age = int((now - row.updated_at).total_seconds())
            found += await self._report(
                rec_id,
                FindingKind.OVERDUE,
                row.refund_no,
                row.refund_no,
                Channel(row.channel),
                {"status": row.status, "age_seconds": age},
            )
        return found

    async def _repair(self, rec_id: int, row: Refund) -> int:
        """Its workflow is closed: if the refund is still unfinished when looked at again, a
        fresh run claims it. Never while a run is open (the start refuses then)."""
        async with self.sessionmaker() as session:
            fresh = await RefundRepository(session).get(row.refund_no)
        if RefundStatus(fresh.status) not in OPEN:
            return 0  # it finished between the two reads: its workflow closed normally
        started = await repair(self.client, self.settings, fresh)
        return await self._report(
            rec_id,
            FindingKind.REPAIRED,
            fresh.refund_no,
            fresh.refund_no,
            Channel(fresh.channel),
            {"status": fresh.status, "started": started},
        )

    async def _tell(
        self,
        rec_id: int,
        row: Refund,
        at_gateway: GatewayRefund,
        kind: FindingKind,
        payment_ref: str,
    ) -> int:
        """The gateway settled it and the ledger does not know: its workflow must hear it. The
        answer is recorded first (timeline and heard status, under the row lock), as the gateway
        activities record theirs: the workflow moves money only by a word the ledger heard."""
        event_id = f"reconciliation-{rec_id}-{row.refund_no}"
        await record_gateway_answer(
            self.sessionmaker,
            row.refund_no,
            row.amount,
            payment_ref,
            at_gateway,
            "gateway_reconciled",
            {"via": "reconciliation", "reconciliation_id": rec_id} | _gateway_detail(at_gateway),
            f"{row.refund_no}:{event_id}",
        )
        notification = GatewayNotification(
            row.refund_no,
            at_gateway.status,
            at_gateway.gateway_refund_id,
            source="reconciliation",
            event_id=event_id,
            event_type="reconciliation",
            failure_reason=at_gateway.failure_reason,
            amount=at_gateway.amount,
            payment_ref=at_gateway.payment_ref,
        )
        found = 0
        # Only an unfinished refund can be repaired; a finished one hears it through deliver
        # (a late failure reopens a success; what a failed refund's success does is its call).
        unfinished = RefundStatus(row.status) in WAITING
        if not unfinished or await is_running(self.client, row.refund_no):
            action = str(await deliver(self.client, self.settings, row, notification))
        else:
            # Closed under it: the repair run looks the refund up and finds the success itself.
            action = "repaired"
            found += await self._repair(rec_id, row)
        return found + await self._report(
            rec_id,
            kind,
            row.refund_no,
            row.refund_no,
            Channel(row.channel),
            {"action": action, "ledger_status": row.status} | _gateway_detail(at_gateway),
        )

    async def _report(
        self,
        rec_id: int,
        kind: FindingKind,
        subject: str,
        refund_no: str | None,
        channel: Channel | None,
        detail: dict[str, Any],
    ) -> int:
        async with outbox_transaction(self.sessionmaker, self.relay) as session:
            new = await ReconciliationRepository(session).add_finding(
                rec_id, kind, subject, refund_no, channel, detail
            )
        if new:
            log.warning(
                "reconciliation_finding",
                extra={"reconciliation_id": rec_id, "kind": str(kind), "refund_no": refund_no},
            )
        return int(new)

    async def _ask(self, rec_id: int, row: Refund, payment_ref: str) -> Asked:
        """The gateway's refund for this row. Whatever the lookup raises (a refusal such as
        WeChat's PARAM_ERROR, a timeout, an unreadable answer) is this refund's finding, not
        the run's end: the next refunds are still asked, the next run asks this one again."""
        gateway = self.gateways[Channel(row.channel)]
        lookup = GatewayLookup(row.refund_no, Channel(row.channel), payment_ref)
        try:
            return Asked(await gateway.get_refund(lookup))
        except Exception as exc:
            log.warning(
                "reconciliation_lookup_failed",
                extra={"refund_no": row.refund_no, "error": type(exc).__name__},
            )
            detail = _error_detail(exc) | {"ledger_status": row.status}
            reported = await self._report(
                rec_id,
                FindingKind.LOOKUP_FAILED,
                row.refund_no,
                row.refund_no,
                Channel(row.channel),
                detail,
            )
            return Asked(None, reported)


@dataclass(frozen=True)
class Asked:
    """A lookup's answer (None: the gateway has no such refund, or it could not be asked) and
    the findings asking it made."""

    refund: GatewayRefund | None
    findings: int = 0


def _error_detail(exc: Exception) -> dict[str, Any]:
    """The error's class and the gateway's code where it has one: enough for ops to tell a
    refusal (PARAM_ERROR) from an outage, with no payload or secret."""
    code = getattr(exc, "code", None)
    cause = exc.__cause__
    return {
        "error": type(exc).__name__,
        "code": code if isinstance(code, str) else None,
        "cause": type(cause).__name__ if cause is not None else None,
        "message": str(exc)[:300],
    }


def _gateway_detail(at_gateway: GatewayRefund) -> dict[str, Any]:
    return {
        "gateway_refund_id": at_gateway.gateway_refund_id,
        "gateway_status": at_gateway.status.value,
        "gateway_amount": at_gateway.amount,
        "gateway_payment_ref": at_gateway.payment_ref,
    }


def _summary(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in counts.items())
