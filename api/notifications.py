"""Gateway webhooks: verified by the adapter, deduplicated by the gateway's event id, and
signalled to the refund's workflow only when they are news *(issue 11)*. A webhook changes
nothing until its signal is delivered."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from refunds.db.repositories import (
    GatewayNotificationRepository,
    RefundRepository,
)
from refunds.domain.matching import gateway_mismatch
from refunds.domain.messages import GatewayNotification, GatewayStatus
from refunds.domain.notifications import NotificationOutcome, most_done
from refunds.gateways.base import ParsedNotification
from refunds.runtime.refund_runs import Delivery, deliver
from refunds.settings import Settings

# The gateway statuses a workflow acts on; `processing` only confirms what the create answered.
DECISIVE = frozenset({GatewayStatus.SUCCEEDED, GatewayStatus.FAILED, GatewayStatus.ABNORMAL})
OUTCOME_OF_DELIVERY = {
    Delivery.SIGNALLED: NotificationOutcome.SIGNALLED,
    Delivery.REOPENED: NotificationOutcome.REOPENED,
    Delivery.REPAIRED: NotificationOutcome.REPAIRED,
    Delivery.IGNORED: NotificationOutcome.IGNORED,
}


async def accept_notification(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    gateway: str,
    parsed: ParsedNotification,
) -> NotificationOutcome | None:
    """Record a verified notification once and deliver what is news in it. None: this event
    was recorded before (a redelivery), nothing done.

    The row, the refund's gateway status and the signal share one transaction: if the signal
    fails, both roll back and the gateway's retry is processed afresh; a signal delivered twice
    is ignored by the workflow.
    """
    first = parsed.refunds[0] if parsed.refunds else None
    notifications = GatewayNotificationRepository(session)
    row_id = await notifications.record(
        gateway,
        parsed.notification_id,
        parsed.event_type,
        first.refund_no if first else None,
        first.status if first else None,
        _jsonable(parsed.payload),
    )
    if row_id is None:
        await session.rollback()
        return None
    outcomes = [
        await _deliver(session, client, settings, gateway, notification)
        for notification in parsed.refunds
    ]
    outcome = most_done(outcomes)
    await notifications.set_outcome(row_id, outcome)
    await session.commit()
    return outcome


async def _deliver(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    gateway: str,
    notification: GatewayNotification,
) -> NotificationOutcome:
    refunds = RefundRepository(session)
    # The row lock puts the notifications of one refund in a line (Stripe sends two events per
    # status, often at the same moment) with the gateway activities' records: each one reads
    # the status the one before it left, so one of two twins is news, never both.
    found = await refunds.find_with_payment_ref(notification.refund_no)
    if found is None:
        return NotificationOutcome.NOT_OURS
    refund, payment_ref = found
    # Every gateway answer is on the refund's timeline, whatever the workflow makes of it: ops
    # deciding an abnormal refund must see that the gateway said SUCCESS.
    await refunds.add_event(
        refund.refund_no,
        "gateway",
        "gateway_notification",
        {
            "gateway_status": notification.status.value,
            "event_type": notification.event_type,
            "event_id": notification.event_id,
            "gateway_refund_id": notification.gateway_refund_id,
            "amount": notification.amount,
            "failure_reason": notification.failure_reason,
            "via": "webhook",
        },
        dedupe_key=f"{refund.refund_no}:{gateway}:{notification.event_id}",
    )
    # A gateway refund that is not the one we asked for is always news (the workflow marks the
    # refund abnormal), and its status is not our refund's: it is not recorded.
    mismatch = gateway_mismatch(
        refund.amount, payment_ref or "", notification.amount, notification.payment_ref
    )
    if mismatch is None:
        if not await refunds.advance_gateway_status(refund, notification.status):
            # Not signalled, even when the refund's run is closed under it: the news it repeats
            # was delivered (or repaired) when it came; the daily reconciliation repairs the rest.
            return NotificationOutcome.DUPLICATE
        if notification.status not in DECISIVE:
            return NotificationOutcome.RECORDED  # "still processing" changes no workflow's course
    return OUTCOME_OF_DELIVERY[await deliver(client, settings, refund, notification)]


def _jsonable(payload: Any) -> Any:
    if hasattr(payload, "__dataclass_fields__"):
        return asdict(payload)
    if isinstance(payload, dict):
        return {str(k): _jsonable(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_jsonable(v) for v in payload]
    if isinstance(payload, str | int | bool) or payload is None:
        return payload
    return str(payload)
