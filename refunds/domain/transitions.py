"""The refund state machine of SPEC §3/§4, and what each move does to the order's money."""

from __future__ import annotations

from refunds.domain.messages import RELEASED_STATUSES, GatewayStatus, RefundStatus

S = RefundStatus

ALLOWED: dict[RefundStatus, frozenset[RefundStatus]] = {
    S.PENDING_APPROVAL: frozenset({S.PROCESSING, S.REJECTED, S.EXPIRED}),
    S.PROCESSING: frozenset({S.SUCCEEDED, S.FAILED, S.ABNORMAL}),
    S.ABNORMAL: frozenset({S.SUCCEEDED, S.FAILED}),
    # A gateway may report a succeeded refund as failed days later: ops must look (SPEC §4).
    S.SUCCEEDED: frozenset({S.ABNORMAL}),
    # A gateway may pay back a refund the ledger had failed (a create still in flight when ops
    # resolved it, or a refund resolved before that was refused): the money went out, so the
    # refund is reopened and its amount counted again.
    S.FAILED: frozenset({S.ABNORMAL}),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


def can_move(current: RefundStatus, target: RefundStatus) -> bool:
    return target in ALLOWED[current]


def money_effect(current: RefundStatus, target: RefundStatus, amount: int) -> tuple[int, int]:
    """(delta reserved_amount, delta refunded_amount) on the order for this move."""
    reserved = 0
    if target in RELEASED_STATUSES and current not in RELEASED_STATUSES:
        reserved = -amount
    elif current in RELEASED_STATUSES and target not in RELEASED_STATUSES:
        reserved = amount  # reopened: the amount is the order's again (the CHECKs hold it)
    refunded = 0
    if target == S.SUCCEEDED:
        refunded = amount
    elif current == S.SUCCEEDED:
        refunded = -amount
    return reserved, refunded


# A gateway refund in these may still be paid out: no decision may release its amount.
UNFINISHED_GATEWAY = frozenset({GatewayStatus.PROCESSING, GatewayStatus.ABNORMAL})

GATEWAY_RANK = {
    GatewayStatus.PROCESSING: 0,
    GatewayStatus.ABNORMAL: 1,
    GatewayStatus.SUCCEEDED: 2,
    GatewayStatus.FAILED: 2,
}


def gateway_moves_forward(current: GatewayStatus | None, new: GatewayStatus) -> bool:
    """Notifications and polls only move forward; a terminal answer is never replaced."""
    if current is None:
        return True
    if current in (GatewayStatus.SUCCEEDED, GatewayStatus.FAILED):
        return False
    return GATEWAY_RANK[new] > GATEWAY_RANK[current]


def is_late_failure(current: GatewayStatus | None, new: GatewayStatus) -> bool:
    """The one backward move that is real: a succeeded refund reported failed later."""
    return current == GatewayStatus.SUCCEEDED and new == GatewayStatus.FAILED


def heard_status(stored: str | None) -> GatewayStatus | None:
    """The gateway status a refund has heard, as its row stores it (`refunds.gateway_status`)."""
    return GatewayStatus(stored) if stored else None


def is_news(current: GatewayStatus | None, new: GatewayStatus) -> bool:
    """Whether a gateway answer tells a refund anything it has not heard *(issue 11)*: only news
    is worth a workflow task (Stripe sends four events per refund, two of them repeats)."""
    return gateway_moves_forward(current, new) or is_late_failure(current, new)
