"""PaymentCheckWorkflow: read the payment an order is being registered on, at its gateway.

The API never calls a gateway itself: it runs this workflow and waits for the answer. The read
is one activity on the channel's gateway task queue, so it counts against the fleet-wide rate
limit like every other call there. The workflow only fetches; the API judges the answer against
the order (`domain.payments.check_payment`), so the rule has one home.

Its id is derived from the channel and the payment: two registrations of one payment at the same
moment share one read.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import GatewayCalls
    from refunds.domain.errors import NON_RETRYABLE_TYPES, GatewayUnavailable
    from refunds.domain.messages import Channel, GatewayPayment, PaymentQuery
    from refunds.domain.task_queues import gateway_task_queue


def payment_check_id(channel: Channel, payment_ref: str) -> str:
    return f"payment-check-{channel}-{payment_ref}"


@workflow.defn(name="PaymentCheck")
class PaymentCheckWorkflow:
    @workflow.run
    async def run(self, query: PaymentQuery) -> GatewayPayment | None:
        try:
            return await workflow.execute_activity_method(
                GatewayCalls.read_payment,
                query,
                task_queue=gateway_task_queue(workflow.info().task_queue, query.channel),
                start_to_close_timeout=timedelta(seconds=query.call_timeout),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=query.retry_initial),
                    maximum_interval=timedelta(seconds=query.retry_max),
                    maximum_attempts=query.attempts,
                    non_retryable_error_types=NON_RETRYABLE_TYPES,
                ),
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                raise  # a domain error: the API maps it by its type
            # Tries used up (timeouts, 5xx, rate limits): typed, so the workflow fails rather
            # than retry its task, and the API answers 503 with nothing registered.
            raise ApplicationError(
                f"{query.channel} did not answer for payment {query.payment_ref}: {err.cause}",
                type=GatewayUnavailable.__name__,
                non_retryable=True,
            ) from err
