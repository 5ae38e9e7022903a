"""Refund notifications exactly as WeChat Pay v3 sends them: an encrypted `resource` in a signed
JSON envelope, retried while the receiver does not answer 2xx."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from refunds.gateways.wechatpay_crypto import aes_gcm_encrypt, new_nonce, platform_headers
from refunds.sandboxes.wechatpay_sandbox.state import Refund, SandboxState, now_rfc3339

EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭"),
}


class Notifier:
    """Builds, signs, encrypts and delivers notifications, recording each one in the state."""

    def __init__(
        self,
        state: SandboxState,
        *,
        mchid: str,
        apiv3_key: str,
        platform_key: rsa.RSAPrivateKey,
        public_key_id: str,
        attempts: int,
        retry_interval: float,
    ) -> None:
        self.state = state
        self.mchid = mchid
        self.apiv3_key = apiv3_key
        self.platform_key = platform_key
        self.public_key_id = public_key_id
        self.attempts = attempts
        self.retry_interval = retry_interval
        self.client: httpx.AsyncClient | None = None

    def build(
        self, refund: Refund, status: str | None = None, create_time: str | None = None
    ) -> dict[str, Any]:
        """One notification record: `body` is the exact JSON text that gets signed and sent."""
        status = status or refund.status
        event_type, summary = EVENTS[status]
        nonce = new_nonce(12)
        plaintext = json.dumps(refund.notification_resource(self.mchid, status), ensure_ascii=False)
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": create_time or now_rfc3339(),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": "refund",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aes_gcm_encrypt(self.apiv3_key, nonce, "refund", plaintext),
                "associated_data": "refund",
                "nonce": nonce,
            },
        }
        return {
            "id": envelope["id"],
            "refund_no": refund.out_refund_no,
            "event_type": event_type,
            "refund_status": status,
            "notify_url": refund.notify_url,
            "body": json.dumps(envelope, ensure_ascii=False, separators=(",", ":")),
            "attempts": [],
            "delivered": False,
        }

    async def send(self, record: dict[str, Any]) -> bool:
        """Deliver with retries; each attempt is freshly signed, the body (and id) stay the same."""
        self.state.notifications.append(record)
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.retry_interval)
            status = await self._post(record)
            record["attempts"].append({"at": time.time(), "status": status})
            if 200 <= status < 300:
                record["delivered"] = True
                break
        self.state.save()
        return bool(record["delivered"])

    async def _post(self, record: dict[str, Any]) -> int:
        """The receiver's HTTP status, or 0 when it could not be reached."""
        if not record["notify_url"] or self.client is None:
            return 0
        headers = platform_headers(self.platform_key, self.public_key_id, record["body"])
        headers["Content-Type"] = "application/json"
        try:
            response = await self.client.post(
                record["notify_url"], content=record["body"].encode(), headers=headers
            )
        except httpx.HTTPError:
            return 0
        return response.status_code

    async def announce(self, refund: Refund) -> None:
        """Notify as the refund's faults ask: not at all, once, twice, or plus a stale one."""
        faults = self.state.refund_faults.get(refund.out_refund_no, {})
        if "no_notify" in faults:
            return
        record = self.build(refund)
        await self.send(record)
        if "duplicate_notify" in faults:
            await self.send({**record, "attempts": [], "delivered": False, "duplicate": True})
        if "out_of_order" in faults:
            # An earlier, non-final state arriving late: ABNORMAL is the one WeChat Pay can send
            # before a refund finally succeeds (it sends no notification for PROCESSING).
            stale_status = str(faults["out_of_order"].get("stale_status", "ABNORMAL"))
            stale_status = stale_status if stale_status in EVENTS else "ABNORMAL"
            stale = self.build(refund, stale_status, create_time=refund.create_time)
            await self.send({**stale, "stale": True})
