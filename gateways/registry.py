"""Which adapter serves which channel, built once per process from settings."""

from __future__ import annotations

from domain.messages import Channel
from gateways.base import Gateway
from settings import Settings


def build_gateways(settings: Settings) -> dict[Channel, Gateway]:
    from gateways.stripe_gateway import StripeGateway
    from gateways.wechatpay_gateway import WeChatPayGateway

    return {
        Channel.STRIPE: StripeGateway.from_settings(settings),
        Channel.WECHATPAY: WeChatPayGateway.from_settings(settings),
    }
