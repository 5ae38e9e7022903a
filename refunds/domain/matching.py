"""Is the refund a gateway shows under our refund_no really ours?

A client chooses its refund_no, and another system on the same merchant account may have used
the same one: a refund found by that key is adopted only if it refunds the same payment for the
same amount in the same currency. Anything else is a mismatch for ops, never a success.
"""

from __future__ import annotations

import re

from refunds.domain.errors import InvalidRefundNo

# Every gateway accepts it: WeChat Pay's out_refund_no is [A-Za-z0-9_\-|*@]{1,64}; Stripe takes
# any metadata value and idempotency key up to 255. `|*@` are left out: they need escaping in URLs.
REFUND_NO_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_refund_no(refund_no: str) -> str:
    if not REFUND_NO_PATTERN.fullmatch(refund_no):
        raise InvalidRefundNo(
            "refund_no must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' "
            "(what every gateway accepts)"
        )
    return refund_no


def gateway_mismatch(
    amount: int,
    payment_ref: str,
    seen_amount: int | None,
    seen_payment_ref: str | None,
    *,
    currency: str = "",
    seen_currency: str | None = None,
) -> str | None:
    """Why the gateway's refund is not the one we asked for, or None when it matches.

    A field the gateway's message does not carry (None or "") is not held against it: WeChat
    Pay's refund notification has no currency, for one. Answers to our own calls always carry
    all three (Stripe's refund object: `amount`, `currency`, `payment_intent`; WeChat Pay's
    refund object: `amount.refund`, `amount.currency`, `transaction_id`), and the adapters fill
    them. Currencies compare case-blind: Stripe writes them in lower case."""
    reasons = []
    if seen_amount is not None and seen_amount != amount:
        reasons.append(f"amount {seen_amount} at the gateway, {amount} in our ledger")
    if seen_payment_ref and payment_ref and seen_payment_ref != payment_ref:
        reasons.append(f"payment {seen_payment_ref} at the gateway, {payment_ref} in our ledger")
    if seen_currency and currency and seen_currency.upper() != currency.upper():
        reasons.append(f"currency {seen_currency} at the gateway, {currency} in our ledger")
    return "; ".join(reasons) or None


def names_our_refund(
    our_gateway_refund_id: str | None, named_gateway_refund_id: str | None, our_own_call: bool
) -> bool:
    """Whether a word that contradicts our refund (`gateway_mismatch`) is about ours: once our
    gateway refund is known, only a word naming it; before, only what our own create or lookup
    found (another refund that took our refund_no). A webhook about another gateway refund under
    our refund_no says nothing about ours."""
    if our_gateway_refund_id is not None:
        return named_gateway_refund_id == our_gateway_refund_id
    return our_own_call
