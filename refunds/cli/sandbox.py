"""`refunds sandbox stripe|wechatpay`: a gateway sandbox on a port, keys from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import uvicorn

from refunds.runtime.http_serving import KEEP_ALIVE_SECONDS
from refunds.settings import get_settings


def serve_sandbox(
    gateway: str,
    host: str,
    port: int,
    refund_delay: float,
    state_file: Path | None,
    webhook_url: str | None,
    webhook_events: Sequence[str] | None = None,
) -> None:
    subscription = _subscription(webhook_events)  # a bad flag stops before anything starts
    settings = get_settings()
    if gateway == "stripe":
        from refunds.sandboxes.stripe_sandbox import StripeSandboxConfig, create_app

        app = create_app(
            StripeSandboxConfig(
                api_key=settings.stripe_api_key,
                webhook_secret=settings.stripe_webhook_secret,
                webhook_url=webhook_url or f"{settings.api_url}/v1/webhooks/stripe",
                refund_delay=refund_delay,
                state_file=state_file,
                webhook_events=subscription,
            )
        )
    else:
        from refunds.sandboxes.wechatpay_sandbox import create_app as create_wechat
        from refunds.sandboxes.wechatpay_sandbox import sandbox_config_from_settings

        app = create_wechat(sandbox_config_from_settings(settings, refund_delay, state_file))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _subscription(names: Sequence[str] | None) -> frozenset[str] | None:
    """`--webhook-events`: unset is every event; a name the sandbox never emits stops it."""
    from refunds.sandboxes.stripe_sandbox.config import webhook_subscription

    try:
        return None if names is None else webhook_subscription(names)
    except ValueError as exc:
        raise SystemExit(f"refunds sandbox stripe --webhook-events: {exc}") from exc
