"""What the workflows ask of their activities: typed signatures and nothing else.

The workflow calls these methods (`workflow.execute_local_activity_method(LedgerSteps.record_step,
step)`), so mypy checks every argument and result, and the activity's name is the method's name:
no string to keep in step, no `result_type`. The code is one hop further, in the class that
overrides each method: `activities/ledger.py`, `activities/restore.py`, `activities/gateway.py`.
This module imports no I/O code, so the workflow sandbox can load it.
"""

from __future__ import annotations

from temporalio import activity

from refunds.domain.messages import (
    Applied,
    DeliveryGaveUp,
    DeliveryOutcome,
    DeliveryTry,
    GatewayPayment,
    GatewayRefund,
    LaneHeads,
    LaneQuery,
    PaymentQuery,
    RefundFacts,
    RefundRequest,
    RefundRow,
    Step,
)


class LedgerSteps:
    """Steps on the system of record, run as local activities (one transaction each).
    Code: `activities.ledger.LedgerActivities`."""

    @activity.defn
    async def open_refund(self, request: RefundRequest) -> Applied:
        """Validate the request and reserve its amount under the order's row lock."""
        raise NotImplementedError

    @activity.defn
    async def claim_refund_run(self, request: RefundRequest) -> Applied:
        """A repair run takes an unfinished refund over from the run closed under it."""
        raise NotImplementedError

    @activity.defn
    async def record_step(self, step: Step) -> RefundRow:
        """The step's timeline entry and its status move (if any), in one transaction."""
        raise NotImplementedError


class RestoreSteps:
    """Code: `activities.restore.RestoreActivities`."""

    @activity.defn
    async def complete_refund(self, step: Step) -> RefundRow:
        """Points, inventory and coupon restored and the refund moved to succeeded, in one
        transaction; each restore still claims its own (refund_no, kind) row."""
        raise NotImplementedError

    @activity.defn
    async def take_back_restores(self, step: Step) -> RefundRow:
        """The refund failed after succeeding: take back what it restored, with the step."""
        raise NotImplementedError


class GatewayCalls:
    """The only activities that move money, on the channel's own task queue (rate limited by
    Temporal for the whole fleet). Code: `activities.gateway.GatewayActivities`."""

    @activity.defn
    async def refund_at_gateway(self, facts: RefundFacts) -> GatewayRefund:
        """Look up by refund_no, then create; the answer is recorded on the timeline."""
        raise NotImplementedError

    @activity.defn
    async def look_up_at_gateway(self, facts: RefundFacts) -> GatewayRefund | None:
        """One poll: the gateway's refund under our refund_no, recorded on the timeline."""
        raise NotImplementedError

    @activity.defn
    async def read_payment(self, query: PaymentQuery) -> GatewayPayment | None:
        """The payment an order is being registered on, as the gateway has it (`PaymentCheck`);
        None when the gateway has no such payment. Reads only."""
        raise NotImplementedError


class WebhookSteps:
    """What an endpoint's delivery workflow asks (issue 13), on the webhooks task queue.
    Code: `activities.webhooks.WebhookActivities`."""

    @activity.defn
    async def pending_lanes(self, query: LaneQuery) -> LaneHeads:
        """The next pending delivery of each refund's lane that is not in flight."""
        raise NotImplementedError

    @activity.defn
    async def deliver_event(self, attempt: DeliveryTry) -> DeliveryOutcome:
        """One signed HTTP POST, recorded; raises unless the receiver answered 2xx."""
        raise NotImplementedError

    @activity.defn
    async def give_up_delivery(self, gave_up: DeliveryGaveUp) -> None:
        """The last try failed: the delivery failed, its endpoint is failing."""
        raise NotImplementedError
