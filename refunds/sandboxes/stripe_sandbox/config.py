"""How a Stripe sandbox instance behaves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class StripeSandboxConfig:
    """`api_key` None accepts any `sk_test_` key; `state_file` makes state survive a restart."""

    api_key: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    refund_delay: float = 2.0
    state_file: Path | None = None
