"""How a Stripe sandbox instance behaves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Every event type this sandbox emits; `webhook_events` may name only these.
EVENT_TYPES = frozenset(
    {
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refunded",
        "charge.refund.updated",
    }
)
ALL_EVENTS = "*"


@dataclass
class StripeSandboxConfig:
    """`api_key` None accepts any `sk_test_` key; `state_file` makes state survive a restart.

    `webhook_events` is the endpoint's subscription, Stripe's `enabled_events`: None delivers
    every event (Stripe's `"*"`); events outside it are still created and listed, not sent."""

    api_key: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    refund_delay: float = 2.0
    state_file: Path | None = None
    webhook_events: frozenset[str] | None = None


def webhook_subscription(names: Iterable[str]) -> frozenset[str] | None:
    """Event names as a subscription: `*` among them means every event (None). A name this
    sandbox never emits is refused, as Stripe refuses an unknown one: a typo would otherwise
    silently turn a webhook into a poll."""
    chosen = frozenset(name.strip() for name in names if name.strip())
    if ALL_EVENTS in chosen:
        return None
    unknown = sorted(chosen - EVENT_TYPES)
    if unknown or not chosen:
        known = ", ".join(sorted(EVENT_TYPES))
        raise ValueError(f"unknown webhook events {unknown or '(none given)'}; known: {known}")
    return chosen
