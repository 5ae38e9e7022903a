"""Points proration (SPEC §3): floor shares for partial refunds, the exact remainder for the
refund that completes the order. Pure functions: no database, no servers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refunds.domain.money import prorated_points


def restore_in_sequence(points_used: int, paid_amount: int, amounts: list[int]) -> list[int]:
    """What each refund of `amounts`, applied in order, restores: the activity's bookkeeping."""
    shares: list[int] = []
    for amount in amounts:
        shares.append(
            prorated_points(
                points_used, paid_amount, amount, sum(amounts[: len(shares)]), sum(shares)
            )
        )
    return shares


@st.composite
def orders_with_partials(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """(paid_amount, points_used, refund amounts > 0 summing exactly to paid_amount)."""
    paid = draw(st.integers(min_value=1, max_value=10**9))
    points = draw(st.integers(min_value=0, max_value=10**7))
    cut_range = st.integers(min_value=1, max_value=paid - 1) if paid > 1 else st.nothing()
    cuts = sorted(draw(st.sets(cut_range, max_size=min(12, paid - 1))))
    bounds = [0, *cuts, paid]
    return paid, points, [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def test_full_refund_restores_all_points_used() -> None:
    assert prorated_points(500, 10000, 10000, 0, 0) == 500


def test_partial_refund_restores_its_proportional_share_rounded_down() -> None:
    assert prorated_points(100, 300, 100, 0, 0) == 33
    assert prorated_points(7, 10000, 9999, 0, 0) == 6


def test_refund_that_completes_the_order_restores_the_exact_remainder() -> None:
    assert restore_in_sequence(100, 300, [100, 100, 100]) == [33, 33, 34]
    assert prorated_points(100, 300, 100, 200, 66) == 34


def test_no_points_used_restores_nothing() -> None:
    assert restore_in_sequence(0, 10000, [2500, 7500]) == [0, 0]


def test_zero_paid_amount_restores_nothing_and_never_divides_by_zero() -> None:
    assert prorated_points(100, 0, 1, 0, 0) == 0


def test_points_already_all_restored_restore_nothing_more() -> None:
    assert prorated_points(100, 1000, 500, 500, 100) == 0
    assert prorated_points(100, 1000, 500, 0, 150) == 0


def test_share_is_capped_by_the_points_not_yet_restored() -> None:
    assert prorated_points(100, 1000, 900, 0, 95) == 5


@pytest.mark.parametrize("amounts", [[1, 9999], [9999, 1], [5000, 5000], [1] * 10 + [9990]])
def test_any_split_of_the_paid_amount_restores_points_used_exactly(amounts: list[int]) -> None:
    shares = restore_in_sequence(997, 10000, amounts)
    assert sum(shares) == 997
    assert all(share >= 0 for share in shares)


@given(orders_with_partials())
def test_partials_summing_to_paid_restore_exactly_points_used(
    case: tuple[int, int, list[int]],
) -> None:
    paid, points, amounts = case
    shares = restore_in_sequence(points, paid, amounts)
    assert sum(shares) == points
    assert all(share >= 0 for share in shares)
    for amount, share in zip(amounts[:-1], shares[:-1], strict=True):
        assert share <= points * amount // paid  # a partial never gets more than its floor share


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=0, max_value=10**7),
)
def test_a_single_full_refund_restores_all_points(paid: int, points: int) -> None:
    assert prorated_points(points, paid, paid, 0, 0) == points
