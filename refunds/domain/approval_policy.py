"""The auto-approval policy (`REFUNDS_AUTO_APPROVE_LIMIT`): pure, so the apply step, its tests
and the docs share one rule.

The limit bounds what the policy approves without a second person, summed, not per refund: four
refunds of 5000 on one order under a limit of 5000 would otherwise move 20000 with no approver.
Two sums, in the refund's currency, count the policy-approved refunds that are not released
(rejected, expired, failed: no money left): those of the refund's order (ever), and those the
same requester applied for on the same UTC day (a fixed boundary every replica and the database
agree on, whatever the shop's time zone). A refund is approved by policy only while both sums,
with it, stay within the limit; otherwise it waits for an approver like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from refunds.domain.messages import RefundSource


@dataclass(frozen=True)
class PolicyUse:
    """What the policy has approved already (minor units of the refund's currency)."""

    order: int
    requester_day: int


@dataclass(frozen=True)
class PolicyDay:
    """The UTC day a refund's requester sum covers: [start, end)."""

    start: datetime
    end: datetime


def eligible(source: RefundSource, amount: int, limit: int) -> bool:
    """Whether the refund could be approved by policy at all, before any sum: an admin's refund
    of at most the limit (a limit of 0 never approves)."""
    return source == RefundSource.ADMIN and 0 < amount <= limit


def remaining(limit: int, used: PolicyUse) -> int:
    """What the policy may still approve for this order and requester today."""
    return max(0, limit - max(used.order, used.requester_day))


def approves(source: RefundSource, amount: int, limit: int, used: PolicyUse) -> bool:
    return eligible(source, amount, limit) and amount <= remaining(limit, used)


def day_of(at: datetime) -> PolicyDay:
    start = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return PolicyDay(start, start + timedelta(days=1))


def lock_key(requested_by: str, currency: str, day: PolicyDay) -> str:
    """The advisory lock's name that serializes one requester's policy decisions of a day (the
    order's row lock serializes those of an order)."""
    return f"auto-approve|{currency}|{day.start.date().isoformat()}|{requested_by}"
