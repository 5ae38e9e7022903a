"""A WeChat-Pay-v3-compatible sandbox: `/v3/refund/domestic/refunds` create and query, signed
responses, encrypted signed notifications, and `/sandbox/*` controls with fault injection
(`POST /sandbox/chaos {"every", "actions", "delay"}`: every n-th `/v3` call fails, see
sandboxes/chaos.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette

from refunds.gateways.wechatpay_crypto import load_private_key, public_key_pem
from refunds.gateways.wechatpay_keys import ensure_dev_keys, resolve_wechatpay_config
from refunds.sandboxes.wechatpay_sandbox.app import (
    WeChatPaySandbox,
    WeChatPaySandboxConfig,
    create_app,
)

if TYPE_CHECKING:
    from refunds.settings import Settings

__all__ = [
    "WeChatPaySandbox",
    "WeChatPaySandboxConfig",
    "create_app",
    "app_from_settings",
    "sandbox_config_from_settings",
]


def sandbox_config_from_settings(
    settings: Settings, refund_delay: float = 2.0, state_file: Path | None = None
) -> WeChatPaySandboxConfig:
    """The sandbox that trusts the merchant key the adapter signs with.

    The platform side always uses the dev platform key pair from the data dir, since only that
    pair has a private key here; the adapter trusts it when `wechatpay_public_key_*` are unset.
    """
    merchant = resolve_wechatpay_config(settings)
    keys = ensure_dev_keys(settings.data_dir)
    merchant_public = public_key_pem(load_private_key(merchant.private_key_pem).public_key())
    return WeChatPaySandboxConfig(
        mchid=merchant.mchid,
        merchant_public_key_pem=merchant_public,
        platform_private_key_pem=keys.platform_private_key_pem(),
        platform_public_key_id=keys.platform_public_key_id,
        apiv3_key=merchant.apiv3_key,
        refund_delay=refund_delay,
        state_file=state_file,
        merchant_cert_serial_no=merchant.cert_serial_no,
        appid=merchant.appid,
    )


def app_from_settings(
    settings: Settings, refund_delay: float = 2.0, state_file: Path | None = None
) -> Starlette:
    """What `refunds sandbox wechatpay` and `refunds dev` serve: state kept in the data dir."""
    state_file = state_file or Path(settings.data_dir) / "wechatpay_sandbox.json"
    return create_app(sandbox_config_from_settings(settings, refund_delay, state_file))
