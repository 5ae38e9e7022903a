"""What became of a verified gateway notification *(issue 11)*: the `outcome` of its
`gateway_notifications` row. Only news is signalled to a refund's workflow."""

from __future__ import annotations

from enum import StrEnum


class NotificationOutcome(StrEnum):
    """Listed from the most done to the least: a notification about several refunds (a Stripe
    `charge.refunded` lists every refund of the charge) records the most done for any of them."""

    # No run was open: a late failure of a succeeded refund started a reopening run.
    REOPENED = "reopened"
    # No run was open under an unfinished refund: a fresh run took it (the gateway is asked again).
    REPAIRED = "repaired"
    # News, delivered to the refund's open run.
    SIGNALLED = "signalled"
    # News for a refund whose workflow had finished and that the news does not change.
    IGNORED = "ignored"
    # News the workflow would not act on (the gateway still processing the refund): the refund's
    # gateway status moves, no signal.
    RECORDED = "recorded"
    # Nothing the refund has not heard (a repeat of its last gateway status, or a stale one):
    # on its timeline, not signalled.
    DUPLICATE = "duplicate"
    # About no refund of ours (an unknown refund_no, or no refund at all).
    NOT_OURS = "not_ours"


def most_done(outcomes: list[NotificationOutcome]) -> NotificationOutcome:
    """The outcome a notification records for what was done with each refund it names."""
    order = list(NotificationOutcome)
    return min(outcomes, key=order.index, default=NotificationOutcome.NOT_OURS)
