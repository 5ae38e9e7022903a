"""Which adapter serves which channel, built once per process from settings."""

from __future__ import annotations

from refunds.domain.messages import Channel
from refunds.gateways.base import Gateway
from refunds.settings import Settings


def build_gateways(settings: Settings) -> dict[Channel, Gateway]:
    from refunds.gateways.stripe_gateway import StripeGateway
    from refunds.gateways.wechatpay_gateway import WeChatPayGateway

    return {
        Channel.STRIPE: StripeGateway.from_settings(settings),
        Channel.WECHATPAY: WeChatPayGateway.from_settings(settings),
    }
