"""Gateway webhooks: verified by the adapter, deduplicated by the gateway's event id, and
signalled to the refund's workflow only when they are news *(issue 11)*. A webhook changes
nothing until its signal is delivered."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from refunds.db.models import Refund
from refunds.db.repositories import (
    GatewayNotificationRepository,
    HeardFromGateway,
    RefundRepository,
)
from refunds.domain.matching import gateway_mismatch, names_our_refund
from refunds.domain.messages import GatewayNotification, GatewayStatus
from refunds.domain.notifications import NotificationOutcome, most_done
from refunds.domain.transitions import heard_status, is_news
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


@dataclass(frozen=True)
class Weighed:
    """One refund a notification names, as weighed under the refund's row lock before anything
    is written: what it comes to, the gateway status to record when that is news, and whether
    the refund's workflow must hear it."""

    notification: GatewayNotification
    refund: Refund | None
    outcome: NotificationOutcome
    news: GatewayStatus | None = None
    deliver: bool = False
    # Another gateway refund under our refund_no: an open run marks ours abnormal; it never
    # reopens or settles a finished one.
    foreign: bool = False


async def accept_notification(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    gateway: str,
    parsed: ParsedNotification,
) -> NotificationOutcome | None:
    """Record a verified notification once and deliver what is news in it. None: this event
    was recorded before (a redelivery), nothing done.

    The refunds it names are locked (in refund_no order) and weighed first; then one statement
    writes its row, with the outcome that weighing foresees, and what it tells each refund; only
    then is anything signalled. The row, the refund's gateway status and the signal share one
    transaction: if the signal fails, all roll back and the gateway's retry is processed afresh;
    a signal delivered twice is ignored by the workflow.
    """
    refunds = RefundRepository(session)
    heard: dict[str, GatewayStatus | None] = {}
    # Locked in refund_no order (stable: a refund named twice keeps its own order), as every
    # notification locks them, so two naming the same refunds in other orders cannot deadlock.
    in_lock_order = sorted(parsed.refunds, key=lambda n: n.refund_no)
    weighed = [await _weigh(refunds, notification, heard) for notification in in_lock_order]
    foreseen = most_done([w.outcome for w in weighed])
    notifications = GatewayNotificationRepository(session)
    first = parsed.refunds[0] if parsed.refunds else None
    row_id = await notifications.record(
        gateway,
        parsed.notification_id,
        parsed.event_type,
        first.refund_no if first else None,
        first.status if first else None,
        _jsonable(parsed.payload),
        outcome=foreseen,
        heard=_heard(gateway, weighed),
    )
    if row_id is None:
        await session.rollback()
        return None
    outcome = most_done([await _deliver(client, settings, w) for w in weighed])
    if outcome != foreseen:  # a closed run: the news was ignored, reopened or repaired it
        await notifications.set_outcome(row_id, outcome)
    await session.commit()
    return outcome


async def _weigh(
    refunds: RefundRepository,
    notification: GatewayNotification,
    heard: dict[str, GatewayStatus | None],
) -> Weighed:
    """What the notification is to the refund it names. `heard`: the gateway status of each
    refund as this notification has left it so far (one may name a refund twice)."""
    # The row lock puts the notifications of one refund in a line (Stripe sends two events per
    # status, often at the same moment) with the gateway activities' records: each one reads
    # the status the one before it left, so one of two twins is news, never both.
    found = await refunds.find_with_payment_ref(notification.refund_no)
    if found is None:
        return Weighed(notification, None, NotificationOutcome.NOT_OURS)
    refund, payment_ref = found
    # A word that contradicts our refund (another payment, amount or currency) is news about
    # ours only when it names our gateway refund; one naming another gateway refund under our
    # refund_no says nothing about ours (on our timeline, never signalled). Our own create or
    # lookup is what finds one that took our refund_no. Either way its status is not recorded.
    mismatch = gateway_mismatch(
        refund.amount,
        payment_ref or "",
        notification.amount,
        notification.payment_ref,
        currency=refund.currency,
        seen_currency=notification.currency,
    )
    ours = names_our_refund(refund.gateway_refund_id, notification.gateway_refund_id, False)
    if mismatch is not None and not ours:
        return Weighed(notification, refund, NotificationOutcome.NOT_OURS, foreign=True)
    if mismatch is not None:
        return Weighed(notification, refund, NotificationOutcome.SIGNALLED, deliver=True)
    current = heard.get(refund.refund_no, heard_status(refund.gateway_status))
    if not is_news(current, notification.status):
        # Not signalled, even when the refund's run is closed under it: the news it repeats
        # was delivered (or repaired) when it came; the daily reconciliation repairs the rest.
        return Weighed(notification, refund, NotificationOutcome.DUPLICATE)
    heard[refund.refund_no] = notification.status
    if notification.status not in DECISIVE:
        # "Still processing" changes no workflow's course.
        return Weighed(notification, refund, NotificationOutcome.RECORDED, notification.status)
    return Weighed(
        notification, refund, NotificationOutcome.SIGNALLED, notification.status, deliver=True
    )


def _heard(gateway: str, weighed: list[Weighed]) -> list[HeardFromGateway]:
    """What each refund of ours hears: one timeline entry (a refund named twice shares the
    event's dedupe key: the first is written) and its last news."""
    heard: dict[str, HeardFromGateway] = {}
    for one in weighed:
        if one.refund is None:
            continue
        refund_no = one.notification.refund_no
        entry = heard.get(refund_no) or _timeline_entry(gateway, one.notification)
        heard[refund_no] = replace(entry, news=one.news or entry.news)
    return list(heard.values())


def _timeline_entry(gateway: str, notification: GatewayNotification) -> HeardFromGateway:
    """Every gateway answer is on the refund's timeline, whatever the workflow makes of it: ops
    deciding an abnormal refund must see that the gateway said SUCCESS."""
    return HeardFromGateway(
        refund_no=notification.refund_no,
        detail={
            "gateway_status": notification.status.value,
            "event_type": notification.event_type,
            "event_id": notification.event_id,
            "gateway_refund_id": notification.gateway_refund_id,
            "amount": notification.amount,
            "failure_reason": notification.failure_reason,
            "via": "webhook",
        },
        dedupe_key=f"{notification.refund_no}:{gateway}:{notification.event_id}",
    )


async def _deliver(client: Client, settings: Settings, weighed: Weighed) -> NotificationOutcome:
    if not weighed.deliver or weighed.refund is None:
        return weighed.outcome
    return OUTCOME_OF_DELIVERY[
        await deliver(
            client, settings, weighed.refund, weighed.notification, ours=not weighed.foreign
        )
    ]


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
