"""The refund state machine (SPEC §3/§4): which moves exist, what each does to the order's
money, and which gateway answers may replace which."""

from __future__ import annotations

import itertools

import pytest

from refunds.domain.messages import RELEASED_STATUSES, GatewayStatus, RefundStatus
from refunds.domain.transitions import (
    can_move,
    gateway_moves_forward,
    is_late_failure,
    is_news,
    money_effect,
)

S = RefundStatus
G = GatewayStatus

SPEC_MOVES = {
    (S.PENDING_APPROVAL, S.PROCESSING),
    (S.PENDING_APPROVAL, S.REJECTED),
    (S.PENDING_APPROVAL, S.EXPIRED),
    (S.PROCESSING, S.SUCCEEDED),
    (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.ABNORMAL),
    (S.ABNORMAL, S.SUCCEEDED),
    (S.ABNORMAL, S.FAILED),
    (S.SUCCEEDED, S.ABNORMAL),  # the late gateway failure, for ops
    (S.FAILED, S.ABNORMAL),  # the gateway paid a refund the ledger had failed: counted again
}
ALL_PAIRS = list(itertools.product(S, S))
AMOUNT = 700


def reserved_and_refunded(status: RefundStatus) -> tuple[int, int]:
    """What a refund in `status` holds on its order once applied (apply reserves the amount)."""
    reserved = 0 if status in RELEASED_STATUSES else AMOUNT
    return reserved, AMOUNT if status == S.SUCCEEDED else 0


@pytest.mark.parametrize(("current", "target"), sorted(SPEC_MOVES))
def test_spec_moves_are_allowed(current: RefundStatus, target: RefundStatus) -> None:
    assert can_move(current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in SPEC_MOVES])
def test_every_other_move_is_forbidden(current: RefundStatus, target: RefundStatus) -> None:
    assert not can_move(current, target)


@pytest.mark.parametrize("terminal", [S.REJECTED, S.EXPIRED])
def test_refunds_never_sent_to_a_gateway_are_final(terminal: RefundStatus) -> None:
    assert not any(can_move(terminal, target) for target in S)


@pytest.mark.parametrize(("current", "target"), sorted(SPEC_MOVES))
def test_money_effect_moves_the_order_money_to_what_the_target_status_holds(
    current: RefundStatus, target: RefundStatus
) -> None:
    before_reserved, before_refunded = reserved_and_refunded(current)
    d_reserved, d_refunded = money_effect(current, target, AMOUNT)
    assert (before_reserved + d_reserved, before_refunded + d_refunded) == reserved_and_refunded(
        target
    )


@pytest.mark.parametrize(
    ("current", "target", "effect"),
    [
        (S.PENDING_APPROVAL, S.PROCESSING, (0, 0)),
        (S.PENDING_APPROVAL, S.REJECTED, (-AMOUNT, 0)),
        (S.PENDING_APPROVAL, S.EXPIRED, (-AMOUNT, 0)),
        (S.PROCESSING, S.SUCCEEDED, (0, AMOUNT)),
        (S.PROCESSING, S.FAILED, (-AMOUNT, 0)),
        (S.PROCESSING, S.ABNORMAL, (0, 0)),
        (S.ABNORMAL, S.SUCCEEDED, (0, AMOUNT)),
        (S.ABNORMAL, S.FAILED, (-AMOUNT, 0)),
        (S.SUCCEEDED, S.ABNORMAL, (0, -AMOUNT)),
        (S.FAILED, S.ABNORMAL, (AMOUNT, 0)),
    ],
)
def test_money_effect_deltas(
    current: RefundStatus, target: RefundStatus, effect: tuple[int, int]
) -> None:
    assert money_effect(current, target, AMOUNT) == effect


def test_every_path_keeps_refunded_within_reserved_within_the_amount() -> None:
    def walk(status: RefundStatus, reserved: int, refunded: int, depth: int) -> None:
        assert 0 <= refunded <= reserved <= AMOUNT
        if depth == 0:
            return
        for target in S:
            if can_move(status, target):
                d_reserved, d_refunded = money_effect(status, target, AMOUNT)
                walk(target, reserved + d_reserved, refunded + d_refunded, depth - 1)

    walk(S.PENDING_APPROVAL, AMOUNT, 0, depth=8)


@pytest.mark.parametrize("new", list(G))
def test_first_gateway_answer_is_always_taken(new: GatewayStatus) -> None:
    assert gateway_moves_forward(None, new)


@pytest.mark.parametrize(
    ("current", "new"), list(itertools.product([G.SUCCEEDED, G.FAILED], list(G)))
)
def test_terminal_gateway_status_is_never_moved_back_or_replaced(
    current: GatewayStatus, new: GatewayStatus
) -> None:
    assert not gateway_moves_forward(current, new)


@pytest.mark.parametrize(
    ("current", "new", "forward"),
    [
        (G.PROCESSING, G.PROCESSING, False),
        (G.PROCESSING, G.ABNORMAL, True),
        (G.PROCESSING, G.SUCCEEDED, True),
        (G.PROCESSING, G.FAILED, True),
        (G.ABNORMAL, G.PROCESSING, False),
        (G.ABNORMAL, G.ABNORMAL, False),
        (G.ABNORMAL, G.SUCCEEDED, True),
        (G.ABNORMAL, G.FAILED, True),
    ],
)
def test_non_terminal_gateway_status_only_moves_forward(
    current: GatewayStatus, new: GatewayStatus, forward: bool
) -> None:
    assert gateway_moves_forward(current, new) is forward


@pytest.mark.parametrize(("current", "new"), list(itertools.product([None, *G], list(G))))
def test_late_failure_is_only_succeeded_then_failed(
    current: GatewayStatus | None, new: GatewayStatus
) -> None:
    assert is_late_failure(current, new) is (current == G.SUCCEEDED and new == G.FAILED)


# Every (heard so far, answer) pair: news is what moves the refund on, or the late failure.
NEWS = {
    (None, G.PROCESSING): True,
    (None, G.ABNORMAL): True,
    (None, G.SUCCEEDED): True,
    (None, G.FAILED): True,
    (G.PROCESSING, G.PROCESSING): False,
    (G.PROCESSING, G.ABNORMAL): True,
    (G.PROCESSING, G.SUCCEEDED): True,
    (G.PROCESSING, G.FAILED): True,
    (G.ABNORMAL, G.PROCESSING): False,
    (G.ABNORMAL, G.ABNORMAL): False,
    (G.ABNORMAL, G.SUCCEEDED): True,
    (G.ABNORMAL, G.FAILED): True,
    (G.SUCCEEDED, G.PROCESSING): False,
    (G.SUCCEEDED, G.ABNORMAL): False,  # WeChat's stale ABNORMAL after SUCCESS
    (G.SUCCEEDED, G.SUCCEEDED): False,
    (G.SUCCEEDED, G.FAILED): True,  # the late failure: reopens a finished refund
    (G.FAILED, G.PROCESSING): False,
    (G.FAILED, G.ABNORMAL): False,
    (G.FAILED, G.SUCCEEDED): False,
    (G.FAILED, G.FAILED): False,
}


def test_the_news_table_covers_every_pair() -> None:
    assert set(NEWS) == set(itertools.product([None, *G], list(G)))


@pytest.mark.parametrize(("current", "new", "news"), [(c, n, v) for (c, n), v in NEWS.items()])
def test_only_a_forward_move_or_a_late_failure_is_news(
    current: GatewayStatus | None, new: GatewayStatus, news: bool
) -> None:
    assert is_news(current, new) is news
