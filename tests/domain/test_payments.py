"""check_payment over its table: an order registered paid must match its payment at the
gateway, and the first contradiction is refused with its stable code."""

from __future__ import annotations

import pytest

from refunds.domain.errors import (
    DomainError,
    PaidAmountExceedsCaptured,
    PaymentCurrencyMismatch,
    PaymentNotFound,
    PaymentNotSucceeded,
)
from refunds.domain.messages import Channel, GatewayPayment
from refunds.domain.payments import check_payment


def paid(captured: int = 5000, currency: str = "USD", status: str = "succeeded") -> GatewayPayment:
    return GatewayPayment("pi_1", status == "succeeded", status, captured, currency)


# (gateway's payment, order currency, order paid_amount) -> refusal (None: registered)
TABLE: list[tuple[str, GatewayPayment | None, str, int, type[DomainError] | None]] = [
    ("matches", paid(), "USD", 5000, None),
    ("paid_below_captured", paid(), "USD", 3000, None),
    ("currency_case_blind", paid(currency="usd"), "USD", 5000, None),
    ("zero_paid_on_a_paid_payment", paid(), "USD", 0, None),
    ("no_such_payment", None, "USD", 5000, PaymentNotFound),
    ("not_succeeded", paid(0, status="requires_payment_method"), "USD", 0, PaymentNotSucceeded),
    ("jpy_order_on_usd_payment", paid(), "JPY", 5000, PaymentCurrencyMismatch),
    ("paid_above_captured", paid(4999), "USD", 5000, PaidAmountExceedsCaptured),
    # The status is judged before the money: a payment not paid has nothing to compare.
    ("not_succeeded_and_other_currency", paid(0, "JPY", "canceled"), "USD", 1, PaymentNotSucceeded),
    ("currency_before_amount", paid(1, "JPY"), "USD", 5000, PaymentCurrencyMismatch),
]


@pytest.mark.parametrize(
    ("payment", "currency", "paid_amount", "refusal"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_paid_order_is_registered_only_on_a_payment_that_covers_it(
    payment: GatewayPayment | None,
    currency: str,
    paid_amount: int,
    refusal: type[DomainError] | None,
) -> None:
    if refusal is None:
        check_payment(Channel.STRIPE, "pi_1", currency, paid_amount, payment)
        return
    with pytest.raises(refusal) as raised:
        check_payment(Channel.STRIPE, "pi_1", currency, paid_amount, payment)
    assert type(raised.value) is refusal
    assert "pi_1" in raised.value.message


def test_refusal_codes_and_statuses_are_stable() -> None:
    assert {
        cls.code: cls.http_status
        for cls in (
            PaymentNotFound,
            PaymentNotSucceeded,
            PaymentCurrencyMismatch,
            PaidAmountExceedsCaptured,
        )
    } == {
        "payment_not_found": 422,
        "payment_not_succeeded": 409,
        "payment_currency_mismatch": 422,
        "paid_amount_exceeds_captured": 422,
    }
