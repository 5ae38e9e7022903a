"""Gateway webhooks: verified by the adapter, deduplicated by the gateway's event id, signalled
to the refund's workflow. A webhook changes nothing until its signal is delivered."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from refunds.db.models import GatewayNotificationRow
from refunds.db.repositories import RefundRepository
from refunds.domain.messages import GatewayNotification
from refunds.gateways.base import ParsedNotification
from refunds.runtime.refund_runs import deliver
from refunds.settings import Settings


async def accept_notification(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    gateway: str,
    parsed: ParsedNotification,
) -> bool:
    """Record and deliver a verified notification once. False: a duplicate, nothing done.

    The row and the signal share one transaction: if the signal fails, the row rolls back and
    the gateway's retry is processed afresh; a signal delivered twice is ignored by the workflow.
    """
    first = parsed.refunds[0] if parsed.refunds else None
    stmt = (
        insert(GatewayNotificationRow)
        .values(
            gateway=gateway,
            notification_id=parsed.notification_id,
            event_type=parsed.event_type,
            refund_no=first.refund_no if first else None,
            status=first.status.value if first else None,
            payload=_jsonable(parsed.payload),
        )
        .on_conflict_do_nothing(index_elements=["gateway", "notification_id"])
        .returning(GatewayNotificationRow.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        await session.rollback()
        return False
    for notification in parsed.refunds:
        await _deliver(session, client, settings, gateway, notification)
    await session.commit()
    return True


async def _deliver(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    gateway: str,
    notification: GatewayNotification,
) -> None:
    refunds = RefundRepository(session)
    refund = await refunds.find(notification.refund_no)
    if refund is None:
        return  # not one of ours: recorded, nothing to move
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
    await deliver(client, settings, refund, notification)


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
