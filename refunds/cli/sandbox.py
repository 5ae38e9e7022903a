"""`refunds sandbox stripe|wechatpay`: a gateway sandbox on a port, keys from the settings."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from refunds.settings import get_settings


def serve_sandbox(
    gateway: str,
    host: str,
    port: int,
    refund_delay: float,
    state_file: Path | None,
    webhook_url: str | None,
) -> None:
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
            )
        )
    else:
        from refunds.sandboxes.wechatpay_sandbox import create_app as create_wechat
        from refunds.sandboxes.wechatpay_sandbox import sandbox_config_from_settings

        app = create_wechat(sandbox_config_from_settings(settings, refund_delay, state_file))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
