"""The WeChat Pay v3 adapter on the official `wechatpayv3` client (public-key mode).

The client is synchronous (requests), so calls run in a worker thread. What an error answer
means (refused / transient / unknown) is the table in `gateways.wechatpay_answers`; whatever the
client raises is unknown. Notifications are verified here rather than with `WeChatPay.callback`,
because the pipeline needs to know *why* a webhook was refused (forged, stale, tampered) and to
enforce a timestamp tolerance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from wechatpayv3 import WeChatPay, WeChatPayType  # type: ignore[import-untyped]

from refunds.domain.errors import GatewayPermanentError, GatewayUnknownError
from refunds.domain.messages import (
    Channel,
    GatewayNotification,
    GatewayPayment,
    GatewayRefund,
    GatewayStatus,
    RefundToFind,
    RefundToPay,
)
from refunds.gateways.answers import gateway_error, lookup_before_create
from refunds.gateways.base import InvalidNotification, ParsedNotification
from refunds.gateways.records import wechatpay_record
from refunds.gateways.wechatpay_answers import classify_wechatpay
from refunds.gateways.wechatpay_crypto import (
    DecryptError,
    aes_gcm_decrypt,
    load_public_key,
    response_message,
    rsa_verify,
)
from refunds.gateways.wechatpay_keys import WeChatPayConfig, resolve_wechatpay_config
from refunds.settings import Settings

__all__ = [
    "WeChatPayConfig",
    "WeChatPayGateway",
    "failure_response",
    "map_status",
    "success_response",
]

log = logging.getLogger(__name__)

STATUS_MAP: dict[str, GatewayStatus] = {
    "SUCCESS": GatewayStatus.SUCCEEDED,
    "PROCESSING": GatewayStatus.PROCESSING,
    "ABNORMAL": GatewayStatus.ABNORMAL,
    # CLOSED is final: a new attempt needs a new out_refund_no (SPEC §6).
    "CLOSED": GatewayStatus.FAILED,
}
# A WeChat Pay transaction_id is 32 digits; the client puts it in the request path unescaped, so
# nothing else is ever sent (it would name another resource).
TRANSACTION_ID = re.compile(r"^[0-9]{1,32}$")
# The query's "no such payment": ORDER_NOT_EXIST is what 查询订单 documents, RESOURCE_NOT_EXISTS
# what the v3 APIs answer for an unknown resource in general.
PAYMENT_MISSING = frozenset({"ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"})
# WeChat Pay's limit on `reason`, in bytes of UTF-8; the full reason stays in our ledger.
REASON_MAX_BYTES = 80


def map_status(refund_status: str) -> GatewayStatus:
    """Unknown statuses count as processing: keep polling rather than guess an outcome."""
    return STATUS_MAP.get(refund_status, GatewayStatus.PROCESSING)


def _failure_reason(refund_status: str) -> str | None:
    if refund_status == "ABNORMAL":
        return "wechatpay_abnormal: the money could not reach the payer's account"
    if refund_status == "CLOSED":
        return "wechatpay_closed: the refund was closed by the gateway"
    return None


def fit_reason(reason: str) -> str | None:
    """`reason` cut to WeChat's 80 bytes on a character boundary (a cut multi-byte character is
    dropped whole, never sent half); None for no reason."""
    fitted = reason.encode()[:REASON_MAX_BYTES].decode("utf-8", errors="ignore")
    return fitted or None


def _refund_amount(payload: Mapping[str, Any]) -> int | None:
    refund = (payload.get("amount") or {}).get("refund")
    return refund if isinstance(refund, int) else None


def success_response() -> tuple[int, bytes | None]:
    """What WeChat Pay expects for an accepted notification: 200/204 and no body."""
    return 204, None


def failure_response(message: str, status: int = 400) -> tuple[int, bytes]:
    """A refused notification: 4xx/5xx with `{"code": "FAIL", "message": ...}`; WeChat retries."""
    return status, json.dumps({"code": "FAIL", "message": message}).encode()


class WeChatPayGateway:
    """`gateways.base.Gateway` for WeChat Pay v3, idempotent by `out_refund_no` = `refund_no`."""

    channel = Channel.WECHATPAY

    def __init__(self, config: WeChatPayConfig) -> None:
        self.config = config
        self._platform_key = load_public_key(config.public_key_pem)
        self._client = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=config.mchid,
            private_key=config.private_key_pem,
            cert_serial_no=config.cert_serial_no,
            appid=config.appid,
            apiv3_key=config.apiv3_key,
            notify_url=config.notify_url,
            timeout=config.timeout_seconds,
            public_key=config.public_key_pem,
            public_key_id=config.public_key_id,
        )
        # The client hard-codes the production host; the sandbox (or a proxy) replaces it.
        self._client._core._gate_way = config.gateway_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> WeChatPayGateway:
        return cls(resolve_wechatpay_config(settings))

    async def create_refund(self, refund: RefundToPay) -> GatewayRefund:
        """Look up `refund_no` first so a retry after a lost answer never refunds twice."""
        existing = await lookup_before_create(self.get_refund, refund)
        if existing is not None:
            # Reported as found: the workflow compares its amount and payment with ours.
            return existing
        if not refund.payment_ref:
            # The client would refuse to send it; known not sent, and no retry can fix it.
            raise GatewayPermanentError(f"wechatpay refund {refund.refund_no}: no transaction_id")
        status, data = await self._call(
            self._client.refund,
            out_refund_no=refund.refund_no,
            transaction_id=refund.payment_ref,
            amount={
                "refund": refund.amount,
                "total": refund.total_amount,
                "currency": refund.currency,
            },
            notify_url=self.config.notify_url,
            reason=fit_reason(refund.reason),
        )
        created = self._answer(status, data, refund.refund_no)
        log.info(
            "gateway_refund_created",
            extra={
                "gateway": "wechatpay",
                "refund_no": refund.refund_no,
                "id": created.gateway_refund_id,
            },
        )
        return created

    async def get_refund(self, lookup: RefundToFind) -> GatewayRefund | None:
        status, data = await self._call(self._client.query_refund, out_refund_no=lookup.refund_no)
        if status == 404 and data.get("code") == "RESOURCE_NOT_EXISTS":
            return None
        return self._answer(status, data, lookup.refund_no)

    async def get_payment(self, payment_ref: str) -> GatewayPayment | None:
        """查询订单 by transaction_id (GET /v3/pay/transactions/id/{id}?mchid=...)."""
        if not TRANSACTION_ID.fullmatch(payment_ref):
            return None
        status, data = await self._call(self._client.query, transaction_id=payment_ref)
        if status == 404 and data.get("code") in PAYMENT_MISSING:
            return None
        if not 200 <= status < 300:
            code = str(data.get("code", "")) or "UNKNOWN"
            message = (
                f"wechatpay {status} {code}: {data.get('message', '')} (payment {payment_ref})"
            )
            raise gateway_error(classify_wechatpay(status, data), message)
        try:
            return self._to_payment(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnknownError(
                f"wechatpay {status}: unreadable transaction {exc!r}"
            ) from exc

    @staticmethod
    def _to_payment(data: Mapping[str, Any]) -> GatewayPayment:
        amount = data["amount"]
        trade_state = str(data["trade_state"])
        return GatewayPayment(
            payment_ref=str(data["transaction_id"]),
            succeeded=trade_state == "SUCCESS",
            gateway_status=trade_state,
            captured=int(amount["total"]) if trade_state == "SUCCESS" else 0,
            # Optional in the answer: a domestic merchant's transactions are CNY, as WeChat
            # documents (the order check still compares it with the order's).
            currency=str(amount.get("currency") or "CNY").upper(),
        )

    async def _call(self, method: Callable[..., Any], **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """One client call. Any exception is unknown: wechatpayv3 raises after the
        request left too (timeouts, a signature or platform serial it cannot verify, even a
        ValueError while matching the serial), so the refund may exist at WeChat."""
        try:
            status, text = await asyncio.to_thread(method, **kwargs)
        except Exception as exc:
            raise GatewayUnknownError(
                f"wechatpay call failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            data = json.loads(text) if text else {}
        except (TypeError, ValueError):
            data = {"code": "UNPARSEABLE", "message": str(text)[:200]}
        return int(status), data if isinstance(data, dict) else {}

    @classmethod
    def _answer(cls, status: int, data: Mapping[str, Any], refund_no: str) -> GatewayRefund:
        """The refund in a 2xx answer; otherwise the error its code names."""
        if not 200 <= status < 300:
            code = str(data.get("code", "")) or "UNKNOWN"
            message = (
                f"wechatpay {status} {code}: {data.get('message', '')} (refund_no={refund_no})"
            )
            raise gateway_error(classify_wechatpay(status, data), message)
        try:
            return cls._to_refund(data)
        except (KeyError, TypeError, ValueError) as exc:
            # Verified but not a refund object we can read: WeChat may have made the refund.
            raise GatewayUnknownError(f"wechatpay {status}: unreadable refund {exc!r}") from exc

    @staticmethod
    def _to_refund(data: Mapping[str, Any]) -> GatewayRefund:
        amount = data.get("amount") or {}
        refund_status = str(data.get("status", ""))
        return GatewayRefund(
            refund_no=str(data["out_refund_no"]),
            gateway_refund_id=str(data["refund_id"]),
            status=map_status(refund_status),
            amount=int(amount["refund"]),
            # Always in a refund object WeChat answers with; "" (not said) rather than a guess,
            # which could hide or invent a currency mismatch.
            currency=str(amount.get("currency") or ""),
            failure_reason=_failure_reason(refund_status),
            payment_ref=data.get("transaction_id"),
        )

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> ParsedNotification:
        """Verify signature, serial and timestamp, then decrypt the AES-256-GCM resource."""
        text = body.decode("utf-8", errors="replace")
        self._verify_headers({k.lower(): v for k, v in headers.items()}, text)
        try:
            envelope = json.loads(text)
            resource = envelope["resource"]
            notification_id = str(envelope["id"])
            event_type = str(envelope["event_type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotification("malformed", "notification body is not a v3 event") from exc
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise InvalidNotification("malformed", f"unsupported {resource.get('algorithm')}")
        payload = self._decrypt(resource)
        refunds = []
        if event_type.startswith("REFUND.") and "out_refund_no" in payload:
            refund_status = str(payload.get("refund_status", ""))
            refunds.append(
                GatewayNotification(
                    refund_no=str(payload["out_refund_no"]),
                    status=map_status(refund_status),
                    gateway_refund_id=payload.get("refund_id"),
                    source="webhook",
                    event_id=notification_id,
                    event_type=event_type,
                    failure_reason=_failure_reason(refund_status),
                    amount=_refund_amount(payload),
                    payment_ref=payload.get("transaction_id"),
                )
            )
        # Only the minimized record leaves the adapter: the decrypted resource names the
        # account the money went to.
        record = wechatpay_record(envelope, payload)
        return ParsedNotification(notification_id, event_type, refunds, record)

    def _verify_headers(self, headers: Mapping[str, str], body: str) -> None:
        signature = headers.get("wechatpay-signature")
        timestamp = headers.get("wechatpay-timestamp")
        nonce = headers.get("wechatpay-nonce")
        serial = headers.get("wechatpay-serial")
        if not (signature and timestamp and nonce and serial):
            raise InvalidNotification("missing_headers", "Wechatpay-* signature headers missing")
        if serial != self.config.public_key_id:
            raise InvalidNotification("unknown_serial", f"unexpected Wechatpay-Serial {serial}")
        if not rsa_verify(self._platform_key, response_message(timestamp, nonce, body), signature):
            raise InvalidNotification("invalid_signature", "Wechatpay-Signature does not verify")
        # Checked after the signature, so 'stale' always means a genuine but replayed message.
        try:
            skew = abs(time.time() - int(timestamp))
        except ValueError as exc:
            raise InvalidNotification("stale_timestamp", "Wechatpay-Timestamp invalid") from exc
        if skew > self.config.webhook_tolerance_seconds:
            raise InvalidNotification("stale_timestamp", f"timestamp {skew:.0f}s off")

    def _decrypt(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        try:
            plaintext = aes_gcm_decrypt(
                self.config.apiv3_key,
                str(resource.get("nonce", "")),
                str(resource.get("associated_data") or ""),
                str(resource.get("ciphertext", "")),
            )
            payload = json.loads(plaintext)
        except DecryptError as exc:
            raise InvalidNotification("decrypt_failed", "resource does not decrypt") from exc
        except ValueError as exc:
            raise InvalidNotification("malformed", "decrypted resource is not JSON") from exc
        if not isinstance(payload, dict):
            raise InvalidNotification("malformed", "decrypted resource is not an object")
        return payload
