"""Demo tokens and demo orders for `refunds dev`, paid for real through the sandboxes."""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx

from api.auth import DEMO_USERS, issue_token
from refunds.sandboxes.payments import pay_with_stripe, pay_with_wechatpay
from refunds.settings import Settings

# The base URL setting of each gateway, as `refunds dev` sets it for the sandbox it starts.
GATEWAY_URL_SETTING = {
    "stripe": "REFUNDS_STRIPE_API_BASE",
    "wechatpay": "REFUNDS_WECHATPAY_GATEWAY",
}

DEMO_ORDERS: list[dict[str, Any]] = [
    {
        "order_no": "DEMO-STRIPE-1001",
        "channel": "stripe",
        "currency": "USD",
        "amount": 12000,
        "items": [
            {"sku": "MUG-RED", "quantity": 2, "unit_amount": 3000},
            {"sku": "TEE-L", "quantity": 1, "unit_amount": 6000},
        ],
        "points_used": 500,
        "coupon_code": "WELCOME10",
    },
    {
        "order_no": "DEMO-STRIPE-1002",
        "channel": "stripe",
        "currency": "USD",
        "amount": 4999,
        "items": [{"sku": "BOOK-42", "quantity": 1, "unit_amount": 4999}],
        "points_used": 0,
        "fulfillment": "shipped",
    },
    {
        "order_no": "DEMO-WECHAT-2001",
        "channel": "wechatpay",
        "currency": "CNY",
        "amount": 26800,
        "items": [{"sku": "TEA-SET", "quantity": 1, "unit_amount": 26800}],
        "points_used": 1000,
    },
    {
        "order_no": "DEMO-WECHAT-2002",
        "channel": "wechatpay",
        "currency": "CNY",
        "amount": 8800,
        "items": [{"sku": "SNACK-BOX", "quantity": 4, "unit_amount": 2200}],
        "points_used": 0,
    },
]


def demo_tokens(env: dict[str, str]) -> dict[str, str]:
    settings = _settings(env)
    assert settings.jwt_secret is not None
    return {
        role: issue_token(settings.jwt_secret, sub, [role], ttl_seconds=30 * 86400)
        for role, sub in DEMO_USERS.items()
    }


def _settings(env: dict[str, str]) -> Settings:
    """The settings `refunds dev` gave its children: same data dir, same generated secrets."""
    return Settings(data_dir=Path(env["REFUNDS_DATA_DIR"]), dev_secrets=True)


def seed_demo_orders(
    env: dict[str, str],
    api_url: str,
    admin_token: str,
    sandboxes: Collection[str],
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """Register the demo orders once; a second `refunds dev` keeps those it finds.

    Demo payments are made only at the sandboxes `refunds dev` started (`sandboxes`): a gateway
    the developer pointed us at may be real, or may not take the sandbox's parameters. Seeding
    never stops the stack: a failure is reported and the next order is tried.
    """
    for channel in sorted(set(GATEWAY_URL_SETTING) - set(sandboxes)):
        _report(
            f"no demo {channel} orders: {GATEWAY_URL_SETTING[channel]} points at a gateway "
            "refunds dev did not start"
        )
    settings = _settings(env)
    seeded = []
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30, transport=transport) as api:
        for demo in DEMO_ORDERS:
            if demo["channel"] not in sandboxes:
                continue
            try:
                _seed_order(api, env, settings, demo)
            except Exception as exc:  # noqa: BLE001 - a demo order is never worth the stack
                _report(f"demo order {demo['order_no']} not seeded: {type(exc).__name__}: {exc}")
            else:
                seeded.append(demo["order_no"])
    return seeded


def _report(message: str) -> None:
    print(f"refunds dev: {message}", file=sys.stderr, flush=True)


def _seed_order(
    api: httpx.Client, env: dict[str, str], settings: Settings, demo: dict[str, Any]
) -> None:
    if api.get(f"/v1/orders/{demo['order_no']}").status_code == 200:
        return
    url = env[GATEWAY_URL_SETTING[demo["channel"]]]
    if demo["channel"] == "stripe":
        assert settings.stripe_api_key is not None
        ref = pay_with_stripe(url, settings.stripe_api_key, demo["amount"], demo["currency"])
    else:
        ref = pay_with_wechatpay(url, demo["amount"], demo["currency"])
    body = {
        "order_no": demo["order_no"],
        "user_id": DEMO_USERS["customer"],
        "channel": demo["channel"],
        "currency": demo["currency"],
        "total_amount": demo["amount"],
        "paid_amount": demo["amount"],
        "payment_ref": ref,
        "items": demo["items"],
        "points_used": demo["points_used"],
        "coupon_code": demo.get("coupon_code"),
        "fulfillment": demo.get("fulfillment", "unfulfilled"),
        "status": "paid",
    }
    api.post("/v1/orders", json=body).raise_for_status()
