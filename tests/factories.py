"""Factories: paid orders (paid for real at the sandboxes), actors with tokens, waiting helpers."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from refunds.sandboxes.payments import pay_with_stripe, pay_with_wechatpay
from tests.stack import Stack


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Shop:
    """One test's people, each with a distinct identity, and an HTTP client to the API."""

    stack: Stack
    http: httpx.AsyncClient
    customer_id: str
    customer: dict[str, str]
    approver: dict[str, str]
    admin: dict[str, str]
    ops: dict[str, str]

    @classmethod
    def open(cls, stack: Stack, http: httpx.AsyncClient) -> Shop:
        customer_id = uid("cust")
        return cls(
            stack,
            http,
            customer_id,
            stack.token(customer_id, "customer"),
            stack.token(uid("approver"), "approver"),
            stack.token(uid("admin"), "admin"),
            stack.token(uid("ops"), "ops"),
        )

    async def order(
        self, channel: str = "stripe", amount: int = 10000, **fields: Any
    ) -> dict[str, Any]:
        """A paid order: paid at the sandbox, then registered by an admin."""
        currency = fields.pop("currency", "USD" if channel == "stripe" else "CNY")
        settings = self.stack.settings
        if channel == "stripe":
            assert settings.stripe_api_key is not None
            ref = await asyncio.to_thread(
                pay_with_stripe, self.stack.stripe_url, settings.stripe_api_key, amount, currency
            )
        else:
            ref = await asyncio.to_thread(
                pay_with_wechatpay, self.stack.wechat_url, amount, currency
            )
        body = {
            "order_no": uid("ord"),
            "user_id": self.customer_id,
            "channel": channel,
            "currency": currency,
            "total_amount": amount,
            "paid_amount": amount,
            "payment_ref": ref,
            "items": [{"sku": uid("sku"), "quantity": 2, "unit_amount": amount // 2}],
            "points_used": 0,
            "fulfillment": "unfulfilled",
            "status": "paid",
            **fields,
        }
        response = await self.http.post("/v1/orders", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def request_refund(
        self,
        order: dict[str, Any],
        amount: int,
        *,
        as_: dict[str, str] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        body = {"order_no": order["order_no"], "amount": amount, "reason": "test", **fields}
        return await self.http.post("/v1/refunds", json=body, headers=as_ or self.customer)

    async def refund(self, order: dict[str, Any], amount: int, **fields: Any) -> dict[str, Any]:
        response = await self.request_refund(order, amount, **fields)
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def approve(
        self, refund_no: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/refunds/{refund_no}/approve",
            json={"note": "ok"},
            headers=headers or self.approver,
        )

    async def get_refund(self, refund_no: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/refunds/{refund_no}", headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def get_order(self, order_no: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/orders/{order_no}", headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_status(
        self, refund_no: str, *statuses: str, timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            refund = await self.get_refund(refund_no)
            if refund["status"] in statuses:
                return refund
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{refund_no} stayed {refund['status']}, wanted {statuses}: "
                    f"{[e['event'] for e in refund['timeline']]}"
                )
            await asyncio.sleep(0.2)


async def wait_event(shop: Shop, refund_no: str, event: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        refund = await shop.get_refund(refund_no)
        if event in events(refund):
            return refund
        if time.monotonic() > deadline:
            raise AssertionError(f"{refund_no} never recorded {event}: {events(refund)}")
        await asyncio.sleep(0.2)


def events(refund: dict[str, Any]) -> list[str]:
    return [e["event"] for e in refund["timeline"]]


async def sandbox(http_url: str, method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as client:
        response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None


async def stripe_fault(stack: Stack, refund_no: str, action: str, **extra: Any) -> None:
    """Arm a fault at the Stripe sandbox for one refund_no (see sandboxes/stripe_sandbox/faults)."""
    await sandbox(
        stack.stripe_url,
        "POST",
        "/_sandbox/faults",
        json={"refund_no": refund_no, "action": action, **extra},
    )
