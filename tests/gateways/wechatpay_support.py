"""Shared WeChat Pay test environment: the real sandbox and a notification receiver, each on its
own port, plus an adapter built from settings exactly as the service builds it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refunds.domain.messages import Channel, GatewayRefundInput
from refunds.embedded.ports import free_port
from refunds.gateways.base import InvalidNotification, ParsedNotification
from refunds.gateways.wechatpay_crypto import aes_gcm_encrypt, new_nonce
from refunds.gateways.wechatpay_gateway import WeChatPayGateway
from refunds.gateways.wechatpay_keys import WeChatPayKeys, ensure_dev_keys
from refunds.sandboxes.background import BackgroundServer
from refunds.sandboxes.wechatpay_sandbox import create_app, sandbox_config_from_settings
from refunds.settings import Settings


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class NotifyReceiver:
    """Records every notification. `?fail=N&key=K` in the notify URL answers 500 to the first N
    deliveries for key K, so a test can drive the sandbox's retries without global state."""

    received: list[Received] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            key = request.query_params.get("key", "")
            self._seen[key] = self._seen.get(key, 0) + 1
            failing = self._seen[key] <= int(request.query_params.get("fail", "0"))
            status = 500 if failing else 204
            path = request.url.path + ("?" + request.url.query if request.url.query else "")
            body = await request.body()
            self.received.append(Received(path, dict(request.headers), body, status))
            if failing:
                return Response(b'{"code":"FAIL","message":"try later"}', 500)
            return Response(status_code=204)

        return Starlette(routes=[Route("/{path:path}", notify, methods=["POST"])])


@dataclass
class WeChatEnv:
    settings: Settings
    keys: WeChatPayKeys
    sandbox: BackgroundServer
    receiver_server: BackgroundServer
    receiver: NotifyReceiver
    gateway: WeChatPayGateway
    http: httpx.AsyncClient

    @property
    def sandbox_url(self) -> str:
        return self.sandbox.url

    async def paid_transaction(self, amount: int = 1000) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.sandbox_url}/sandbox/transactions", json={"amount": amount, "currency": "CNY"}
        )
        response.raise_for_status()
        return dict(response.json())

    async def fault(self, **fault: Any) -> None:
        response = await self.http.post(f"{self.sandbox_url}/sandbox/faults", json=fault)
        response.raise_for_status()

    async def clear_faults(self) -> None:
        await self.http.delete(f"{self.sandbox_url}/sandbox/faults")

    async def sandbox_refunds(self, refund_no: str) -> dict[str, Any]:
        url = f"{self.sandbox_url}/sandbox/refunds"
        return dict((await self.http.get(url, params={"refund_no": refund_no})).json())

    def sandbox_stored_reason(self, refund_no: str) -> str:
        """The `reason` the sandbox stored. Its control API shows refunds as the v3 API does,
        without the reason, so this reads the sandbox's books in process."""
        app = self.sandbox.server.config.app
        assert isinstance(app, Starlette)
        return str(app.state.sandbox.state.refunds[refund_no].reason)

    async def sandbox_notifications(self, refund_no: str) -> list[dict[str, Any]]:
        url = f"{self.sandbox_url}/sandbox/notifications"
        response = await self.http.get(url, params={"refund_no": refund_no})
        return list(response.json()["notifications"])

    def parsed_for(self, refund_no: str) -> list[tuple[Received, ParsedNotification]]:
        """Accepted deliveries whose decrypted resource is about `refund_no`, in arrival order."""
        found = []
        for item in list(self.receiver.received):
            if item.answered >= 300:
                continue
            try:
                parsed = self.gateway.parse_notification(item.headers, item.body)
            except InvalidNotification:
                # The receiver lives the whole session: an earlier test's notification is past
                # the 300 s tolerance by now. This test's own (fresh) one still parses, or the
                # wait fails with what it saw.
                continue
            if parsed.refunds and parsed.refunds[0].refund_no == refund_no:
                found.append((item, parsed))
        return found

    async def wait_notifications(
        self, refund_no: str, count: int = 1, timeout: float = 5.0
    ) -> list[tuple[Received, ParsedNotification]]:
        return await wait_for(lambda: self.parsed_for(refund_no), count, timeout)


async def wait_for(probe: Callable[[], list[Any]], count: int, timeout: float) -> list[Any]:
    """Poll until `probe` returns at least `count` items; fail loudly with what it saw."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = probe()
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            assert len(found) >= count, f"expected {count}, got {found}"
            return found
        await asyncio.sleep(0.02)


def refund_input(
    txn: dict[str, Any], amount: int, refund_no: str | None = None
) -> GatewayRefundInput:
    return GatewayRefundInput(
        refund_no=refund_no or f"R{uuid.uuid4().hex[:20]}",
        order_no=txn["out_trade_no"],
        channel=Channel.WECHATPAY,
        payment_ref=txn["transaction_id"],
        amount=amount,
        currency="CNY",
        total_amount=txn["amount"],
        reason="商品已售完",
    )


def start_env(data_dir: Path, refund_delay: float = 0.2, notify_retry: float = 0.05) -> WeChatEnv:
    """Sandbox + receiver on free ports; the adapter's notify_url points at the receiver."""
    receiver = NotifyReceiver()
    receiver_server = BackgroundServer(receiver.app(), free_port())
    receiver_server.start()
    sandbox_port = free_port()
    settings = Settings(
        data_dir=data_dir,
        wechatpay_gateway=f"http://127.0.0.1:{sandbox_port}",
        public_base_url=receiver_server.url,
        gateway_call_timeout=timedelta(seconds=2),
    )
    config = sandbox_config_from_settings(settings, refund_delay=refund_delay)
    config.notify_retry_interval = notify_retry
    sandbox = BackgroundServer(create_app(config), sandbox_port)
    sandbox.start()
    return WeChatEnv(
        settings=settings,
        keys=ensure_dev_keys(data_dir),
        sandbox=sandbox,
        receiver_server=receiver_server,
        receiver=receiver,
        gateway=WeChatPayGateway.from_settings(settings),
        http=httpx.AsyncClient(timeout=10),
    )


async def stop_env(env: WeChatEnv) -> None:
    await env.http.aclose()
    env.sandbox.stop()
    env.receiver_server.stop()


def success_envelope(
    apiv3_key: str,
    resource: Mapping[str, object],
    notification_id: str,
    *,
    nonce: str | None = None,
    ciphertext: str | None = None,
) -> dict[str, Any]:
    """A REFUND.SUCCESS notification body as WeChat Pay sends it: `resource` sealed with the
    APIv3 key, unless a test hands in its own (tampered) `ciphertext`."""
    nonce = nonce or new_nonce(12)
    sealed = aes_gcm_encrypt(apiv3_key, nonce, "refund", json.dumps(resource))
    return {
        "id": notification_id,
        "create_time": "2024-01-01T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "REFUND.SUCCESS",
        "summary": "退款成功",
        "resource": {
            "original_type": "refund",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext or sealed,
            "associated_data": "refund",
            "nonce": nonce,
        },
    }
