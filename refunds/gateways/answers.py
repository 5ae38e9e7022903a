"""What a gateway's answer means for a refund: refused, worth retrying, or unknown.

Each adapter keeps a table of the answers it knows (`stripe_answers`, `wechatpay_answers`) and
one classify function over it; everything the table does not name is UNKNOWN. Only REFUSED may
fail a refund (and release its reservation): an UNKNOWN refund may be paid out at the gateway, so
it is retried behind the lookup-first create until the gateway tells us what it did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from refunds.domain.errors import GatewayPermanentError, GatewayTransientError, GatewayUnknownError
from refunds.domain.messages import GatewayLookup, GatewayRefund, RefundToFind, RefundToPay


class AnswerKind(StrEnum):
    # An explicit business refusal: the gateway did nothing and the same request fails again.
    REFUSED = "refused"
    # Known not done, and time or an ops fix (balance, keys, permissions) can change that.
    TRANSIENT = "transient"
    # The request may have been carried out: never fail the refund on it.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    """One table row: what an answer means, and why we read it so."""

    kind: AnswerKind
    why: str


def gateway_error(kind: AnswerKind, message: str) -> Exception:
    """The domain error the activities raise for an answer of this kind."""
    if kind is AnswerKind.REFUSED:
        return GatewayPermanentError(message)
    if kind is AnswerKind.TRANSIENT:
        return GatewayTransientError(message)
    return GatewayUnknownError(message)


async def lookup_before_create(
    get_refund: Callable[[RefundToFind], Awaitable[GatewayRefund | None]],
    refund: RefundToPay,
) -> GatewayRefund | None:
    """The lookup a create starts with. A refusal of the lookup says nothing of an earlier
    attempt's create, which may have gone through: it is never final here, only UNKNOWN."""
    try:
        return await get_refund(GatewayLookup(refund.refund_no, refund.channel, refund.payment_ref))
    except GatewayPermanentError as exc:
        raise GatewayUnknownError(f"lookup before create refused: {exc.message}") from exc
