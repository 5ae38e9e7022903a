"""Gateway calls: the only activities that move money. Idempotent by refund_no at the gateway."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from activities.errors import business_errors
from refunds.domain import activity_names as names
from refunds.domain.messages import Channel, GatewayLookup, GatewayRefund, GatewayRefundInput
from refunds.gateways.base import Gateway


class GatewayActivities:
    def __init__(self, gateways: Mapping[Channel, Gateway]) -> None:
        self.gateways = gateways

    @activity.defn(name=names.CREATE_GATEWAY_REFUND)
    @business_errors
    async def create_gateway_refund(self, refund: GatewayRefundInput) -> GatewayRefund:
        """Look up, then create: the gateway's own idempotency keys expire, our lookup does not."""
        activity.logger.info(
            "gateway refund %s attempt %d", refund.refund_no, activity.info().attempt
        )
        return await self.gateways[refund.channel].create_refund(refund)

    @activity.defn(name=names.GET_GATEWAY_REFUND)
    @business_errors
    async def get_gateway_refund(self, lookup: GatewayLookup) -> GatewayRefund | None:
        """Poll the gateway when no notification came in time."""
        return await self.gateways[lookup.channel].get_refund(lookup)
