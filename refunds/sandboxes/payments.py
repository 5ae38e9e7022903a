"""Make a paid payment at a sandbox, the way a shop's checkout would: for demo data and tests."""

from __future__ import annotations

import httpx
import stripe


def pay_with_stripe(api_base: str, api_key: str, amount: int, currency: str) -> str:
    """A confirmed PaymentIntent paid with Stripe's test card; returns its id."""
    client = stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=0)
    intent = client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": "pm_card_visa",
            "confirm": True,
            # No redirects: a server-side confirm with a card, as a test checkout does.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
    )
    if intent.status != "succeeded":
        raise RuntimeError(f"payment {intent.id} is {intent.status}")
    return str(intent.id)


def pay_with_wechatpay(
    gateway: str, amount: int, currency: str = "CNY", trade_state: str = "SUCCESS"
) -> str:
    """A paid transaction through the WeChat Pay sandbox's control endpoint; its transaction_id.
    Another `trade_state` (NOTPAY, CLOSED) makes a transaction that was not paid."""
    body = {"amount": amount, "currency": currency, "trade_state": trade_state}
    response = httpx.post(f"{gateway}/sandbox/transactions", json=body, timeout=10)
    response.raise_for_status()
    return str(response.json()["transaction_id"])
