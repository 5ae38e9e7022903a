"""Money arithmetic on integer minor units. No floats: proration is integer floor division."""

from __future__ import annotations


def prorated_points(
    points_used: int,
    paid_amount: int,
    refund_amount: int,
    refunded_before: int,
    restored_before: int,
) -> int:
    """Points to restore for one refund (SPEC §3).

    A partial refund restores its proportional share rounded down; the refund that completes the
    order restores the exact remainder, so any sequence that completes the order sums to
    `points_used`.
    """
    remaining = max(0, points_used - restored_before)
    if paid_amount <= 0 or remaining == 0:
        return 0
    if refunded_before + refund_amount >= paid_amount:
        return remaining
    return min(remaining, points_used * refund_amount // paid_amount)
