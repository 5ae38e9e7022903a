"""Pure rules of the daily reconciliation: its window, what is overdue, and what a gateway's
word on a refund means against the ledger's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from refunds.domain.messages import FindingKind, GatewayStatus, RefundStatus

WAITING = frozenset({RefundStatus.PROCESSING, RefundStatus.ABNORMAL})
# Statuses under which no gateway refund may exist at all: nobody approved the money.
NEVER_SENT = frozenset({RefundStatus.REJECTED, RefundStatus.EXPIRED})
# The late failure, and what ops decide after it (the refund workflow's timeline events).
LATE_FAILURE_EVENT = "gateway_failed_after_success"
RESOLUTION_EVENTS = frozenset({"resolved_succeeded", "resolved_failed"})


def day_window(day: str | None, time_zone: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of `day` (YYYY-MM-DD) in `time_zone`; no day: the day before `now` there."""
    zone = ZoneInfo(time_zone)
    wanted = date.fromisoformat(day) if day else now.astimezone(zone).date() - timedelta(days=1)
    start = datetime.combine(wanted, time(0), zone)
    return start, datetime.combine(wanted + timedelta(days=1), time(0), zone)


def overdue_by(status: str, since: datetime, now: datetime, limits: dict[str, timedelta]) -> bool:
    limit = limits.get(status)
    return limit is not None and now - since > limit


def adjudicated(timeline: Sequence[str]) -> bool:
    """Ops resolved the refund after its last late failure: their decision is final, so a
    gateway still disagreeing is reported, never delivered (it would reopen it again)."""
    late = [i for i, event in enumerate(timeline) if event == LATE_FAILURE_EVENT]
    return bool(late) and any(e in RESOLUTION_EVENTS for e in timeline[late[-1] + 1 :])


@dataclass(frozen=True)
class Verdict:
    """What one gateway refund says against its ledger row: the finding (None: they agree, or
    the difference is the refund's own workflow's to settle) and whether its run must hear it."""

    kind: FindingKind | None
    deliver: bool = False
    reason: str | None = None


AGREE = Verdict(None)


def verdict(ledger: RefundStatus, gateway: GatewayStatus, is_adjudicated: bool) -> Verdict:
    """The one table of ledger status × gateway status (amount and payment already match)."""
    if ledger in NEVER_SENT:
        why = f"the ledger has it {ledger.value}: no gateway refund should exist"
        return Verdict(FindingKind.MISMATCH, reason=why)
    if ledger in WAITING:
        succeeded = gateway == GatewayStatus.SUCCEEDED
        return Verdict(FindingKind.GATEWAY_SUCCEEDED, deliver=True) if succeeded else AGREE
    if ledger == RefundStatus.SUCCEEDED and gateway == GatewayStatus.FAILED:
        if is_adjudicated:
            return Verdict(FindingKind.ADJUDICATED)
        return Verdict(FindingKind.GATEWAY_FAILED, deliver=True)
    if ledger == RefundStatus.FAILED and gateway != GatewayStatus.FAILED:
        if is_adjudicated:
            return Verdict(FindingKind.ADJUDICATED)
        # Only a success is news a run can act on; processing is money that may still go out.
        delivered = gateway == GatewayStatus.SUCCEEDED
        return Verdict(FindingKind.GATEWAY_SUCCEEDED_AFTER_FAILURE, deliver=delivered)
    if ledger == RefundStatus.FAILED and is_adjudicated:
        # Both say failed; reported so ops see the gateway's late word on what they decided.
        return Verdict(FindingKind.ADJUDICATED)
    return AGREE
