"""Is the payment an order is registered on what the order says it is?

An order's `paid_amount` is what its refunds may pay back, and the gateway refunds in the
payment's currency: a JPY 5000 order on a USD 50.00 PaymentIntent would refund $50 for "5000",
and a paid amount above what the gateway took would promise refunds it will refuse. So an order
registered `paid` is checked against the gateway's own record of the payment first.

Refunds made at the gateway outside our ledger (the dashboard, another system) are not
subtracted here: the payment objects do not carry them (Stripe keeps them on the charge, WeChat
Pay on each refund), the gateway refuses a refund over what is left (a `refused` answer, the
refund fails and its reservation is released), and the daily reconciliation reports each of
them (a refund without our refund_no).
"""

from __future__ import annotations

from refunds.domain.errors import (
    PaidAmountExceedsCaptured,
    PaymentCurrencyMismatch,
    PaymentNotFound,
    PaymentNotSucceeded,
)
from refunds.domain.messages import Channel, GatewayPayment


def check_payment(
    channel: Channel,
    payment_ref: str,
    currency: str,
    paid_amount: int,
    payment: GatewayPayment | None,
) -> None:
    """Raise the first contradiction between the order and its payment at the gateway."""
    if payment is None:
        raise PaymentNotFound(f"{channel} has no payment {payment_ref}")
    if not payment.succeeded:
        raise PaymentNotSucceeded(
            f"{channel} payment {payment_ref} is {payment.gateway_status}, not paid"
        )
    if payment.currency.upper() != currency.upper():
        raise PaymentCurrencyMismatch(
            f"{channel} payment {payment_ref} is in {payment.currency.upper()}, "
            f"the order in {currency.upper()}"
        )
    if paid_amount > payment.captured:
        raise PaidAmountExceedsCaptured(
            f"paid_amount {paid_amount} exceeds the {payment.captured} {channel} captured "
            f"on {payment_ref}"
        )
