"""What a refund's customer may read of it: the rule in one place, pure, over the timeline.

The timeline is the shop's audit trail: who approved, ops' notes, every gateway answer, polls
and lookups. A customer sees only the moves of their refund's status, said by "you" or "the
shop", and the messages written for them: a rejection's reason (the reject body's `reason` is
the customer's answer by design) and a decision's explicit `customer_message`. Nothing else of
an entry's detail reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from refunds.domain.messages import RefundStatus

# The timeline entry the API writes after a decision that carried a message for the customer.
CUSTOMER_MESSAGE_EVENT = "customer_message"
CUSTOMER_MESSAGE_KEY = "customer_message"
REQUESTED_EVENT = "requested"
REJECTED_EVENT = "rejected"


class CustomerStatus(StrEnum):
    """A refund's status in the customer's words: the shop's checks (abnormal) are its own."""

    REQUESTED = "requested"
    IN_PROGRESS = "in_progress"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


class CustomerActor(StrEnum):
    YOU = "you"
    SHOP = "the shop"


CUSTOMER_STATUS: Mapping[RefundStatus, CustomerStatus] = {
    RefundStatus.PENDING_APPROVAL: CustomerStatus.REQUESTED,
    RefundStatus.PROCESSING: CustomerStatus.IN_PROGRESS,
    RefundStatus.ABNORMAL: CustomerStatus.IN_PROGRESS,
    RefundStatus.SUCCEEDED: CustomerStatus.REFUNDED,
    RefundStatus.REJECTED: CustomerStatus.REJECTED,
    RefundStatus.FAILED: CustomerStatus.FAILED,
    RefundStatus.EXPIRED: CustomerStatus.EXPIRED,
}


def customer_status(status: RefundStatus | str) -> CustomerStatus:
    return CUSTOMER_STATUS[RefundStatus(status)]


def actor_for(actor: str, customer_id: str) -> CustomerActor:
    """Staff, the gateway, the policy and the system are all "the shop" to the customer."""
    return CustomerActor.YOU if actor == customer_id else CustomerActor.SHOP


@dataclass(frozen=True)
class CustomerEntry:
    at: datetime
    by: CustomerActor
    status: RefundStatus
    message: str | None = None


def customer_entry(
    at: datetime, actor: str, event: str, detail: Mapping[str, Any], customer_id: str
) -> CustomerEntry | None:
    """The customer's line for one timeline entry, or None: everything that is not a status
    move or a message for them is the shop's internals."""
    by = actor_for(actor, customer_id)
    if event == REQUESTED_EVENT:
        return CustomerEntry(at, by, RefundStatus.PENDING_APPROVAL)
    if event == CUSTOMER_MESSAGE_EVENT:
        message = str(detail.get(CUSTOMER_MESSAGE_KEY) or "") or None
        return CustomerEntry(at, by, RefundStatus(detail["status"]), message)
    if "to" not in detail:
        return None
    message = str(detail.get("reason") or "") or None if event == REJECTED_EVENT else None
    return CustomerEntry(at, by, RefundStatus(detail["to"]), message)


def customer_timeline(
    entries: Iterable[tuple[datetime, str, str, Mapping[str, Any]]], customer_id: str
) -> list[CustomerEntry]:
    """(at, actor, event, detail) in order → the customer's lines. A move that changes nothing
    in the customer's words (processing → abnormal, both "in progress") is not news to them."""
    lines: list[CustomerEntry] = []
    for at, actor, event, detail in entries:
        line = customer_entry(at, actor, event, detail, customer_id)
        if line is None:
            continue
        same = lines and customer_status(lines[-1].status) == customer_status(line.status)
        if same and line.message is None:
            continue
        lines.append(line)
    return lines


def customer_message_detail(message: str, status: RefundStatus) -> dict[str, str]:
    """The detail of the entry that carries a decision's message to the customer."""
    return {CUSTOMER_MESSAGE_KEY: message, "status": status.value}
