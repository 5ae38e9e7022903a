"""The auto-approval policy's rule over its whole table: eligibility by source and amount, then
what the order's and the requester's day's policy-approved sums leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from refunds.domain.approval_policy import PolicyUse, approves, day_of, lock_key, remaining
from refunds.domain.messages import RefundSource

ADMIN, CUSTOMER = RefundSource.ADMIN, RefundSource.CUSTOMER
NOTHING = PolicyUse(order=0, requester_day=0)


@pytest.mark.parametrize(
    ("source", "amount", "limit", "used", "approved"),
    [
        (ADMIN, 5000, 5000, NOTHING, True),  # the limit itself is within it
        (ADMIN, 5001, 5000, NOTHING, False),
        (ADMIN, 1, 0, NOTHING, False),  # limit 0: the policy never approves
        (CUSTOMER, 100, 5000, NOTHING, False),  # only admins' refunds
        (ADMIN, 1, 5000, PolicyUse(order=5000, requester_day=5000), False),
        (ADMIN, 2000, 5000, PolicyUse(order=3000, requester_day=3000), True),
        (ADMIN, 2001, 5000, PolicyUse(order=3000, requester_day=3000), False),
        (ADMIN, 2000, 5000, PolicyUse(order=0, requester_day=4000), False),  # the day's sum
        (ADMIN, 2000, 5000, PolicyUse(order=4000, requester_day=0), False),  # the order's sum
    ],
)
def test_the_policy_approves_only_while_both_sums_stay_within_the_limit(
    source: RefundSource, amount: int, limit: int, used: PolicyUse, approved: bool
) -> None:
    assert approves(source, amount, limit, used) is approved


def test_remaining_is_what_the_larger_sum_leaves_and_never_negative() -> None:
    assert remaining(5000, PolicyUse(order=1000, requester_day=3500)) == 1500
    assert remaining(5000, PolicyUse(order=7000, requester_day=0)) == 0  # the limit was lowered


def test_the_requester_day_is_the_utc_day_whatever_the_offset_of_the_time() -> None:
    shanghai = timezone(timedelta(hours=8))
    day = day_of(datetime(2026, 12, 8, 7, 30, tzinfo=shanghai))  # 23:30 UTC on the 7th
    assert (day.start, day.end) == (
        datetime(2026, 12, 7, tzinfo=UTC),
        datetime(2026, 12, 8, tzinfo=UTC),
    )


def test_the_lock_names_one_requester_currency_and_day() -> None:
    day = day_of(datetime(2026, 12, 7, 12, tzinfo=UTC))
    names = {lock_key("carol", "USD", day), lock_key("carol", "CNY", day)}
    names |= {lock_key("dave", "USD", day), lock_key("carol", "USD", day_of(day.end))}
    assert len(names) == 4
