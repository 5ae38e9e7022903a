"""Outgoing events *(issue 13)*: what a shop hears about its refunds, and which status move
says what. One home for the rule, imported by the outbox writer, the API and the tests."""

from __future__ import annotations

from enum import StrEnum

from refunds.domain.messages import RefundStatus


class EventType(StrEnum):
    REFUND_CREATED = "refund.created"
    REFUND_APPROVED = "refund.approved"
    REFUND_REJECTED = "refund.rejected"
    REFUND_EXPIRED = "refund.expired"
    REFUND_PROCESSING = "refund.processing"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    REFUND_REQUIRES_ACTION = "refund.requires_action"
    REFUND_RESOLVED = "refund.resolved"
    RECONCILIATION_FINDING = "reconciliation.finding"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# An endpoint subscribed to this hears every type, those added later included.
ALL_TYPES = "*"

# Timeline events of ops deciding an abnormal refund: one `refund.resolved`, whose payload's
# status says which way (design §4b).
RESOLUTION_EVENTS = frozenset({"resolved_succeeded", "resolved_failed"})

BY_STATUS: dict[RefundStatus, EventType] = {
    RefundStatus.REJECTED: EventType.REFUND_REJECTED,
    RefundStatus.EXPIRED: EventType.REFUND_EXPIRED,
    RefundStatus.SUCCEEDED: EventType.REFUND_SUCCEEDED,
    RefundStatus.FAILED: EventType.REFUND_FAILED,
    RefundStatus.ABNORMAL: EventType.REFUND_REQUIRES_ACTION,
}


def event_type_of_move(to_status: RefundStatus, timeline_event: str) -> EventType:
    """The one event a status move is told as. Processing is `refund.approved` when a person
    approved it and `refund.processing` when it was approved automatically (nobody did)."""
    if timeline_event in RESOLUTION_EVENTS:
        return EventType.REFUND_RESOLVED
    if to_status == RefundStatus.PROCESSING:
        if timeline_event == "approved":
            return EventType.REFUND_APPROVED
        return EventType.REFUND_PROCESSING
    if to_status == RefundStatus.PENDING_APPROVAL:
        return EventType.REFUND_CREATED
    return BY_STATUS[to_status]
