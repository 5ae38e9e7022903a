"""The adapter protocol every gateway implements (SPEC §6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from refunds.domain.messages import (
    Channel,
    GatewayNotification,
    GatewayPayment,
    GatewayRefund,
    GatewayRefundPage,
    RefundToFind,
    RefundToPay,
)


class InvalidNotification(Exception):
    """A webhook that is forged, stale, tampered with or unreadable: rejected, changes nothing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ParsedNotification:
    """A verified webhook: its gateway-unique id (the dedupe key) and what it says of refunds.

    `refunds` is empty for events that carry no refund of ours (other event types).
    """

    notification_id: str
    event_type: str
    refunds: list[GatewayNotification] = field(default_factory=list)
    # The minimized record kept of it (`gateways.records`), never the body as received.
    payload: dict[str, object] = field(default_factory=dict)


class Gateway(Protocol):
    """Each adapter reads every failed call as one of three answer kinds (`gateways.answers`,
    with a table per gateway) and raises:

    - `domain.errors.GatewayPermanentError` only for an explicit business refusal (a non-2xx
      answer with a refusal code the table knows): nothing was done, the refund may fail;
    - `domain.errors.GatewayTransientError` when known not done but worth retrying (rate limit,
      balance short, a config error ops must fix);
    - `domain.errors.GatewayUnknownError` (a transient error) for anything after the request may
      have left: timeouts, resets, 5xx, unknown codes, answers it cannot read or verify. Retried;
      never a reason to fail a refund, as the gateway may be paying it out.

    A refund found under `refund_no` is reported as the gateway has it (its amount and
    `payment_ref`), never judged here: the caller compares it with its own."""

    channel: Channel

    async def create_refund(self, refund: RefundToPay) -> GatewayRefund:
        """Create the refund, idempotent by `refund.refund_no`."""
        ...

    async def get_refund(self, lookup: RefundToFind) -> GatewayRefund | None:
        """The gateway's refund for `lookup.refund_no`, or None if it has none."""
        ...

    async def get_payment(self, payment_ref: str) -> GatewayPayment | None:
        """The payment as the gateway has it, or None if it has no such payment (a reference
        no payment of the gateway can have is None too, without a call). A read: its failures
        raise the errors above and are retried; none of them is a payment's absence."""
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> ParsedNotification:
        """Verify and decode a webhook; raise `InvalidNotification` if it is not genuine."""
        ...


@runtime_checkable
class ListsRefunds(Protocol):
    """A gateway that can list its refunds by creation time, for the daily reconciliation.

    Apart from `Gateway` because not every gateway can: WeChat Pay v3 has no refund list API.
    Failures raise the same domain errors as `Gateway`'s calls."""

    async def list_refunds(
        self, created_from: int, created_to: int, cursor: str | None, limit: int = 100
    ) -> GatewayRefundPage:
        """One page of the refunds created in [created_from, created_to) (unix seconds),
        continuing after `cursor` (a page's `next_cursor`; None for the first page). Refunds
        that carry no refund_no of ours come back with `refund_no=""`, reported as-is."""
        ...


@runtime_checkable
class ListsFailedRefunds(Protocol):
    """A gateway that can say which refunds failed in a window, whenever they were created: a
    refund may fail days after it succeeded (Stripe's `refund.failed`), and a lost webhook of
    that failure is seen nowhere else. Failures raise the same domain errors as `Gateway`'s."""

    async def list_failed_refunds(
        self, failed_from: int, failed_to: int, cursor: str | None, limit: int = 100
    ) -> GatewayRefundPage:
        """One page of the refunds that failed in [failed_from, failed_to) (unix seconds), each
        as it was when it failed; `cursor` as in `ListsRefunds.list_refunds`."""
        ...
