"""Gateway calls: the only activities that move money. Idempotent by refund_no at the gateway.

They run on the channel's own task queue (`refunds.runtime.task_queues`), whose rate Temporal
holds for every worker together: the gateway's request limit is the fleet's, not a process's.
What the gateway answered is written to the refund's timeline here, in the activity that heard
it, so the workflow spends no step on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import GatewayCalls
from activities.errors import business_errors
from refunds.db.records import Records
from refunds.db.step_writes import Entry, StepWrites
from refunds.domain import activity_names as names
from refunds.domain.matching import gateway_mismatch
from refunds.domain.messages import (
    Channel,
    GatewayLookup,
    GatewayPayment,
    GatewayRefund,
    GatewayRefundInput,
    PaymentQuery,
    RefundFacts,
)
from refunds.domain.transitions import heard_status, is_news
from refunds.gateways.base import Gateway


async def record_gateway_answer(
    sessionmaker: async_sessionmaker[AsyncSession],
    refund_no: str,
    amount: int,
    payment_ref: str,
    refund: GatewayRefund | None,
    event: str,
    detail: Mapping[str, Any],
    key: str,
) -> None:
    """A gateway answer we asked for ourselves, on the refund's timeline; its status recorded,
    under the refund's row lock, when it is news and the refund it describes is ours (a
    mismatch is the workflow's to judge, never a success). What the ledger has heard this way
    (or from a verified webhook) is what a move by the gateway's word requires."""
    async with sessionmaker.begin() as session:
        records, writes = Records(session), StepWrites(refund_no)
        writes.entry(Entry("gateway", event, dict(detail), key))
        row = await records.refund(refund_no, lock=refund is not None)
        ours = refund is not None and (
            gateway_mismatch(
                amount,
                payment_ref,
                refund.amount,
                refund.payment_ref,
                currency=row.currency,
                seen_currency=refund.currency or None,
            )
            is None
        )
        if refund is not None and ours:
            news = is_news(heard_status(row.gateway_status), refund.status)
            if news or row.gateway_refund_id is None:
                writes.gateway(
                    row.gateway_refund_id or refund.gateway_refund_id,
                    refund.status.value if news else row.gateway_status,
                )
        await writes.send(session)


class GatewayActivities(GatewayCalls):
    def __init__(
        self,
        gateways: Mapping[Channel, Gateway],
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.gateways = gateways
        self.sessionmaker = sessionmaker

    @activity.defn
    @business_errors
    async def refund_at_gateway(self, facts: RefundFacts) -> GatewayRefund:
        activity.logger.info(
            "gateway refund %s attempt %d", facts.refund_no, activity.info().attempt
        )
        refund = await self.gateways[facts.channel].create_refund(facts)
        detail = {"gateway_refund_id": refund.gateway_refund_id, "gateway_status": refund.status}
        # Once per refund: a retry after this commit found the same refund by its lookup.
        await self._heard(
            facts, refund, "gateway_submitted", detail, f"{facts.refund_no}:submitted"
        )
        return refund

    @activity.defn
    @business_errors
    async def look_up_at_gateway(self, facts: RefundFacts) -> GatewayRefund | None:
        found = await self.gateways[facts.channel].get_refund(facts)
        info = activity.info()
        key = f"{facts.refund_no}:polled:{info.workflow_run_id}:{info.activity_id}"
        if found is None:
            await self._heard(facts, None, "gateway_polled", {"gateway_status": "not_found"}, key)
            return None
        detail = {
            "gateway_status": found.status,
            "gateway_refund_id": found.gateway_refund_id,
            "amount": found.amount,
            "failure_reason": found.failure_reason,
        }
        await self._heard(facts, found, "gateway_polled", detail | {"via": "poll"}, key)
        return found

    @activity.defn
    @business_errors
    async def read_payment(self, query: PaymentQuery) -> GatewayPayment | None:
        # Judged by the caller (`domain.payments.check_payment`), which knows the order.
        return await self.gateways[query.channel].get_payment(query.payment_ref)

    async def _heard(
        self,
        facts: RefundFacts,
        refund: GatewayRefund | None,
        event: str,
        detail: Mapping[str, Any],
        key: str,
    ) -> None:
        if self.sessionmaker is not None:
            await record_gateway_answer(
                self.sessionmaker,
                facts.refund_no,
                facts.amount,
                facts.payment_ref,
                refund,
                event,
                detail,
                key,
            )

    # ---- the first workflow type's activities (kept until its runs drain) ------------------

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
