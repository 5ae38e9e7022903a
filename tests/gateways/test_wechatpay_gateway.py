"""The WeChat Pay adapter against the real sandbox over HTTP, with the official client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from refunds.domain.errors import GatewayPermanentError, GatewayTransientError, GatewayUnknownError
from refunds.domain.messages import Channel, GatewayLookup, GatewayStatus
from refunds.gateways.base import InvalidNotification
from refunds.gateways.wechatpay_crypto import (
    load_private_key,
    platform_headers,
    private_key_pem,
    public_key_pem,
)
from refunds.gateways.wechatpay_gateway import WeChatPayGateway, failure_response, success_response
from refunds.gateways.wechatpay_keys import ensure_dev_keys, resolve_wechatpay_config
from refunds.settings import Settings
from tests.gateways.wechatpay_support import WeChatEnv, refund_input, success_envelope


def lookup(refund_no: str) -> GatewayLookup:
    return GatewayLookup(refund_no=refund_no, channel=Channel.WECHATPAY, payment_ref="")


def sign_notification(
    wechat_env: WeChatEnv, envelope: Mapping[str, object], **headers: str
) -> tuple[dict[str, str], bytes]:
    """A notification signed with the platform key, optionally at another timestamp."""
    body = json.dumps(envelope, separators=(",", ":"))
    key = load_private_key(wechat_env.keys.platform_private_key_pem())
    signed = platform_headers(key, wechat_env.keys.platform_public_key_id, body, **headers)
    return signed, body.encode()


def envelope_for(
    wechat_env: WeChatEnv, resource: Mapping[str, object], ciphertext: str | None = None
) -> dict[str, Any]:
    apiv3_key = wechat_env.settings.wechatpay_apiv3_key or ""
    return success_envelope(
        apiv3_key, resource, "EV-test", nonce="abcdefghijkl", ciphertext=ciphertext
    )


RESOURCE = {"out_refund_no": "R-x", "refund_id": "50x", "refund_status": "SUCCESS"}


# --- refunds -------------------------------------------------------------------------------------


async def test_refund_is_processing_then_success_with_a_verified_notification(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    refund = await wechat_env.gateway.create_refund(refund_input(txn, 300))
    assert (refund.status, refund.amount, refund.currency) == (GatewayStatus.PROCESSING, 300, "CNY")
    assert refund.payment_ref == txn["transaction_id"]

    [(received, parsed)] = await wechat_env.wait_notifications(refund.refund_no)
    assert received.path == "/v1/webhooks/wechatpay"
    assert parsed.event_type == "REFUND.SUCCESS"
    [note] = parsed.refunds
    assert (note.refund_no, note.status) == (refund.refund_no, GatewayStatus.SUCCEEDED)
    assert note.gateway_refund_id == refund.gateway_refund_id
    assert note.event_id == parsed.notification_id
    assert (note.amount, note.payment_ref) == (300, txn["transaction_id"])
    assert note.currency is None  # WeChat's refund notification carries no currency
    assert parsed.payload["transaction_id"] == txn["transaction_id"]
    assert parsed.payload["amount"] == {
        "total": 1000,
        "refund": 300,
        "payer_total": 1000,
        "payer_refund": 300,
    }
    later = await wechat_env.gateway.get_refund(lookup(refund.refund_no))
    assert later is not None and later.status == GatewayStatus.SUCCEEDED
    assert (later.amount, later.payment_ref) == (300, txn["transaction_id"])


async def test_refund_found_under_our_refund_no_is_reported_as_wechat_has_it_not_refused(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 400)
    await wechat_env.gateway.create_refund(request)
    # Another amount under the same refund_no: the workflow compares, the adapter reports.
    found = await wechat_env.gateway.create_refund(dataclasses.replace(request, amount=300))
    assert (found.amount, found.payment_ref) == (400, txn["transaction_id"])
    seen = await wechat_env.sandbox_refunds(request.refund_no)
    assert seen["create_requests"] == {request.refund_no: 1}


async def test_long_chinese_reason_reaches_wechat_cut_to_80_bytes(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = dataclasses.replace(refund_input(txn, 100), reason="商品质量问题" * 5)  # 90 bytes
    await wechat_env.gateway.create_refund(request)
    stored = wechat_env.sandbox_stored_reason(request.refund_no)
    assert stored == request.reason[:26] and len(stored.encode("utf-8")) == 78


async def test_same_refund_no_twice_is_one_refund_at_the_gateway(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 400)
    first = await wechat_env.gateway.create_refund(request)
    second = await wechat_env.gateway.create_refund(request)
    assert second.gateway_refund_id == first.gateway_refund_id
    seen = await wechat_env.sandbox_refunds(request.refund_no)
    assert len(seen["refunds"]) == 1
    # The second call found the refund by lookup and never sent a create.
    assert seen["create_requests"] == {request.refund_no: 1}


async def test_timeout_is_unknown_and_the_refund_made_behind_it_is_found_not_repeated(
    wechat_env: WeChatEnv,
) -> None:
    gateway = WeChatPayGateway(dataclasses.replace(wechat_env.gateway.config, timeout_seconds=0.3))
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 250)
    await wechat_env.fault(
        method="POST", path_prefix="/v3/refund", action="timeout", times=1, delay=0.8
    )
    with pytest.raises(GatewayUnknownError):
        await gateway.create_refund(request)
    await _wait_refund_exists(wechat_env, request.refund_no)
    again = await gateway.create_refund(request)
    assert again.amount == 250
    seen = await wechat_env.sandbox_refunds(request.refund_no)
    assert len(seen["refunds"]) == 1 and seen["create_requests"] == {request.refund_no: 1}


async def test_refused_lookup_before_a_retried_create_is_unknown_never_a_refusal(
    wechat_env: WeChatEnv,
) -> None:
    """A first attempt's create went through (its answer lost); the retry's lookup is refused
    (a key change: 401 SIGN_ERROR would be transient, so a refusal code: 400 PARAM_ERROR). The
    refund exists at WeChat: failing it would release money WeChat is paying out."""
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 300)
    await wechat_env.gateway.create_refund(request)
    await wechat_env.fault(
        method="GET", path_prefix="/v3/refund/domestic/refunds/", action="error", times=1
    )
    with pytest.raises(GatewayUnknownError, match="PARAM_ERROR"):
        await wechat_env.gateway.create_refund(request)
    with pytest.raises(GatewayPermanentError, match="PARAM_ERROR"):
        await _refused_lookup(wechat_env, request.refund_no)
    again = await wechat_env.gateway.create_refund(request)
    assert again.amount == 300
    seen = await wechat_env.sandbox_refunds(request.refund_no)
    assert len(seen["refunds"]) == 1 and seen["create_requests"] == {request.refund_no: 1}


async def _refused_lookup(wechat_env: WeChatEnv, refund_no: str) -> None:
    """The same answer to a plain lookup is a refusal (the workflow's poll makes it no news)."""
    await wechat_env.fault(
        method="GET", path_prefix="/v3/refund/domestic/refunds/", action="error", times=1
    )
    await wechat_env.gateway.get_refund(lookup(refund_no))


async def _wait_refund_exists(wechat_env: WeChatEnv, refund_no: str) -> None:
    deadline = time.monotonic() + 3
    while not (await wechat_env.sandbox_refunds(refund_no))["refunds"]:
        assert time.monotonic() < deadline, "sandbox never created the refund"
        await asyncio.sleep(0.05)


async def test_unknown_refund_lookup_is_none(wechat_env: WeChatEnv) -> None:
    assert await wechat_env.gateway.get_refund(lookup("R-never-created")) is None


@pytest.mark.parametrize(
    ("action", "expected"),
    [("http_500", GatewayUnknownError), ("rate_limit", GatewayTransientError)],
)
async def test_server_error_is_unknown_and_rate_limit_is_transient(
    wechat_env: WeChatEnv, action: str, expected: type[Exception]
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 100)
    await wechat_env.fault(method="POST", path_prefix="/v3/refund", action=action, times=1)
    with pytest.raises(GatewayTransientError) as raised:
        await wechat_env.gateway.create_refund(request)
    assert type(raised.value) is expected
    assert (await wechat_env.gateway.create_refund(request)).amount == 100  # the retry goes through
    assert len((await wechat_env.sandbox_refunds(request.refund_no))["refunds"]) == 1


async def test_unreachable_gateway_is_unknown_as_the_client_cannot_tell_refused_from_reset(
    wechat_env: WeChatEnv,
) -> None:
    config = dataclasses.replace(wechat_env.gateway.config, gateway_url="http://127.0.0.1:9")
    with pytest.raises(GatewayUnknownError):
        await WeChatPayGateway(config).get_refund(lookup("R-any"))


async def test_refused_refund_is_permanent(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 100)
    await wechat_env.fault(
        refund_no=request.refund_no, action="permanent_error", code="INVALID_REQUEST"
    )
    with pytest.raises(GatewayPermanentError, match="INVALID_REQUEST"):
        await wechat_env.gateway.create_refund(request)
    assert (await wechat_env.sandbox_refunds(request.refund_no))["refunds"] == []


async def test_not_enough_balance_is_transient_not_refused(wechat_env: WeChatEnv) -> None:
    # WeChat says recharge and call again: the customer's refund waits for the money.
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 100)
    await wechat_env.fault(refund_no=request.refund_no, action="permanent_error", code="NOT_ENOUGH")
    with pytest.raises(GatewayTransientError, match="NOT_ENOUGH") as raised:
        await wechat_env.gateway.create_refund(request)
    assert type(raised.value) is GatewayTransientError
    assert (await wechat_env.sandbox_refunds(request.refund_no))["refunds"] == []


async def test_refund_over_the_remaining_amount_is_permanent(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    await wechat_env.gateway.create_refund(refund_input(txn, 700))
    with pytest.raises(GatewayPermanentError, match="INVALID_REQUEST"):
        await wechat_env.gateway.create_refund(refund_input(txn, 301))
    assert (await wechat_env.gateway.create_refund(refund_input(txn, 300))).amount == 300


async def test_total_other_than_the_paid_amount_is_permanent(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = dataclasses.replace(refund_input(txn, 100), total_amount=999)
    with pytest.raises(GatewayPermanentError, match="PARAM_ERROR"):
        await wechat_env.gateway.create_refund(request)


async def test_refund_without_a_transaction_id_is_permanent_as_it_is_never_sent(
    wechat_env: WeChatEnv,
) -> None:
    txn = {"transaction_id": "", "out_trade_no": "o", "amount": 100}
    with pytest.raises(GatewayPermanentError, match="transaction_id"):
        await wechat_env.gateway.create_refund(refund_input(txn, 100))


async def test_unknown_transaction_is_permanent(wechat_env: WeChatEnv) -> None:
    txn = {"transaction_id": "4200000000000000000000000000", "out_trade_no": "o", "amount": 100}
    with pytest.raises(GatewayPermanentError, match="RESOURCE_NOT_EXISTS"):
        await wechat_env.gateway.create_refund(refund_input(txn, 100))


async def test_abnormal_refund_notifies_abnormal(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 500)
    await wechat_env.fault(refund_no=request.refund_no, action="abnormal")
    await wechat_env.gateway.create_refund(request)
    [(_, parsed)] = await wechat_env.wait_notifications(request.refund_no)
    assert parsed.event_type == "REFUND.ABNORMAL"
    assert parsed.refunds[0].status == GatewayStatus.ABNORMAL
    assert parsed.refunds[0].failure_reason
    polled = await wechat_env.gateway.get_refund(lookup(request.refund_no))
    assert polled is not None and polled.status == GatewayStatus.ABNORMAL


async def test_closed_refund_is_failed(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 1000)
    await wechat_env.fault(refund_no=request.refund_no, action="closed")
    await wechat_env.gateway.create_refund(request)
    [(_, parsed)] = await wechat_env.wait_notifications(request.refund_no)
    assert (parsed.event_type, parsed.refunds[0].status) == ("REFUND.CLOSED", GatewayStatus.FAILED)
    # A closed refund gives its amount back: the payment is refundable again under a new number.
    assert (await wechat_env.gateway.create_refund(refund_input(txn, 1000))).amount == 1000


async def test_duplicate_notify_sends_the_same_id_twice(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 100)
    await wechat_env.fault(refund_no=request.refund_no, action="duplicate_notify")
    await wechat_env.gateway.create_refund(request)
    first, second = await wechat_env.wait_notifications(request.refund_no, count=2)
    assert first[1].notification_id == second[1].notification_id
    assert first[0].body == second[0].body


# --- security ------------------------------------------------------------------------------------


async def test_request_signed_with_another_merchant_key_is_a_transient_config_error(
    wechat_env: WeChatEnv,
) -> None:
    stranger = private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    gateway = WeChatPayGateway(
        dataclasses.replace(wechat_env.gateway.config, private_key_pem=stranger)
    )
    with pytest.raises(GatewayTransientError, match="SIGN_ERROR") as raised:
        await gateway.get_refund(lookup("R-any"))
    assert type(raised.value) is GatewayTransientError  # turned away: retried until fixed


async def test_response_with_a_bad_platform_signature_is_not_trusted(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 100)
    await wechat_env.gateway.create_refund(request)
    await wechat_env.fault(method="GET", path_prefix="/v3/refund", action="bad_signature", times=1)
    with pytest.raises(GatewayUnknownError, match="signature"):
        await wechat_env.gateway.get_refund(lookup(request.refund_no))


async def test_create_answered_with_a_bad_signature_is_unknown_and_the_retry_finds_it(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    request = refund_input(txn, 100)
    await wechat_env.fault(method="POST", path_prefix="/v3/refund", action="bad_signature")
    with pytest.raises(GatewayUnknownError, match="signature"):
        await wechat_env.gateway.create_refund(request)
    again = await wechat_env.gateway.create_refund(request)
    [made] = (await wechat_env.sandbox_refunds(request.refund_no))["refunds"]
    assert again.gateway_refund_id == made["refund_id"]


async def test_response_signed_by_another_platform_key_is_unknown_not_refused(
    wechat_env: WeChatEnv,
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    config = dataclasses.replace(wechat_env.gateway.config, public_key_pem=public_key_pem(other))
    request = refund_input(await wechat_env.paid_transaction(), 1)
    with pytest.raises(GatewayUnknownError, match="signature"):
        await WeChatPayGateway(config).create_refund(request)
    assert len((await wechat_env.sandbox_refunds(request.refund_no))["refunds"]) == 1


def platform_certificate() -> x509.Certificate:
    """A platform certificate like those real WeChat Pay serves at /v3/certificates."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name)
    builder = builder.public_key(key.public_key()).serial_number(x509.random_serial_number())
    builder = builder.not_valid_before(now).not_valid_after(now + timedelta(days=1))
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("holds_certificate", "raised_inside"),
    [(False, "Exception: failed to verify the signature"), (True, "ValueError")],
    ids=["sandbox-serves-no-certificates", "client-holds-a-platform-certificate"],
)
async def test_answer_under_another_platform_serial_is_unknown_not_refused(
    wechat_env: WeChatEnv, holds_certificate: bool, raised_inside: str
) -> None:
    config = dataclasses.replace(wechat_env.gateway.config, public_key_id="PUB_KEY_ID_NOT_OURS")
    gateway = WeChatPayGateway(config)
    if holds_certificate:
        # With a certificate on hand (real WeChat serves them), wechatpayv3 parses the answer's
        # serial as hex to compare it, and a public key id is not hex: ValueError.
        gateway._client._core._certificates.append(platform_certificate())
    request = refund_input(await wechat_env.paid_transaction(), 100)
    with pytest.raises(GatewayUnknownError, match=raised_inside):
        await gateway.create_refund(request)
    # WeChat accepted the refund: failing it here would release money that is being paid out.
    assert len((await wechat_env.sandbox_refunds(request.refund_no))["refunds"]) == 1


async def test_notification_with_a_bad_signature_is_invalid_signature(
    wechat_env: WeChatEnv,
) -> None:
    headers, body = sign_notification(wechat_env, envelope_for(wechat_env, RESOURCE))
    forged = body.replace(b"EV-test", b"EV-forg")
    with pytest.raises(InvalidNotification) as err:
        wechat_env.gateway.parse_notification(headers, forged)
    assert err.value.code == "invalid_signature"


async def test_stale_notification_is_rejected(wechat_env: WeChatEnv) -> None:
    old = str(int(time.time()) - 301)
    headers, body = sign_notification(wechat_env, envelope_for(wechat_env, RESOURCE), timestamp=old)
    with pytest.raises(InvalidNotification) as err:
        wechat_env.gateway.parse_notification(headers, body)
    assert err.value.code == "stale_timestamp"


async def test_notification_from_the_future_is_rejected(wechat_env: WeChatEnv) -> None:
    # Two seconds past the 300 s tolerance: the header has whole seconds, the clock does not.
    ahead = str(int(time.time()) + 302)
    headers, body = sign_notification(
        wechat_env, envelope_for(wechat_env, RESOURCE), timestamp=ahead
    )
    with pytest.raises(InvalidNotification) as err:
        wechat_env.gateway.parse_notification(headers, body)
    assert err.value.code == "stale_timestamp"


async def test_tampered_ciphertext_fails_to_decrypt(wechat_env: WeChatEnv) -> None:
    sealed = envelope_for(wechat_env, RESOURCE)["resource"]["ciphertext"]
    tampered = ("A" if sealed[0] != "A" else "B") + sealed[1:]
    headers, body = sign_notification(
        wechat_env, envelope_for(wechat_env, RESOURCE, ciphertext=tampered)
    )
    with pytest.raises(InvalidNotification) as err:
        wechat_env.gateway.parse_notification(headers, body)
    assert err.value.code == "decrypt_failed"


async def test_notification_with_another_serial_is_rejected(wechat_env: WeChatEnv) -> None:
    headers, body = sign_notification(wechat_env, envelope_for(wechat_env, RESOURCE))
    headers["Wechatpay-Serial"] = "PUB_KEY_ID_SOMEONE_ELSE"
    with pytest.raises(InvalidNotification) as err:
        wechat_env.gateway.parse_notification(headers, body)
    assert err.value.code == "unknown_serial"


async def test_notification_without_signature_headers_is_rejected(wechat_env: WeChatEnv) -> None:
    _, body = sign_notification(wechat_env, envelope_for(wechat_env, RESOURCE))
    with pytest.raises(InvalidNotification) as err:
        wechat_env.gateway.parse_notification({"content-type": "application/json"}, body)
    assert err.value.code == "missing_headers"


async def test_notification_headers_are_case_insensitive(wechat_env: WeChatEnv) -> None:
    headers, body = sign_notification(wechat_env, envelope_for(wechat_env, RESOURCE))
    parsed = wechat_env.gateway.parse_notification({k.upper(): v for k, v in headers.items()}, body)
    assert parsed.notification_id == "EV-test"
    assert parsed.refunds[0].refund_no == "R-x" and parsed.refunds[0].event_id == "EV-test"


# --- configuration -------------------------------------------------------------------------------


def test_dev_keys_are_generated_once_with_private_files_0600(tmp_path: Path) -> None:
    keys = ensure_dev_keys(tmp_path)
    assert ensure_dev_keys(tmp_path) == keys
    assert keys.merchant_private_key_pem() == ensure_dev_keys(tmp_path).merchant_private_key_pem()
    assert keys.platform_public_key_id.startswith("PUB_KEY_ID_")
    assert keys.merchant_private_key_path.stat().st_mode & 0o777 == 0o600
    assert keys.platform_private_key_path.stat().st_mode & 0o777 == 0o600


def test_config_fills_unset_keys_from_dev_keys_and_keeps_set_ones(tmp_path: Path) -> None:
    keys = ensure_dev_keys(tmp_path)
    settings = Settings(
        data_dir=tmp_path, public_base_url="https://shop.example", wechatpay_public_key_id="PUB_X"
    )
    config = resolve_wechatpay_config(settings)
    assert config.cert_serial_no == keys.merchant_cert_serial_no
    assert config.public_key_id == "PUB_X"
    assert config.notify_url == "https://shop.example/v1/webhooks/wechatpay"
    assert config.gateway_url == "https://api.mch.weixin.qq.com"
    assert len(config.apiv3_key) == 32


def test_webhook_answers_follow_wechat_conventions() -> None:
    assert success_response() == (204, None)
    status, body = failure_response("bad signature", 401)
    assert status == 401 and json.loads(body) == {"code": "FAIL", "message": "bad signature"}


# --- the payment an order is registered on ------------------------------------------------------


async def test_paid_transaction_is_read_with_its_total_and_currency(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1500)
    payment = await wechat_env.gateway.get_payment(txn["transaction_id"])
    assert payment is not None
    assert (payment.payment_ref, payment.succeeded, payment.gateway_status) == (
        txn["transaction_id"],
        True,
        "SUCCESS",
    )
    assert (payment.captured, payment.currency) == (1500, "CNY")


async def test_transaction_not_paid_is_read_as_not_succeeded_with_nothing_captured(
    wechat_env: WeChatEnv,
) -> None:
    response = await wechat_env.http.post(
        f"{wechat_env.sandbox_url}/sandbox/transactions",
        json={"amount": 900, "currency": "CNY", "trade_state": "NOTPAY"},
    )
    response.raise_for_status()
    payment = await wechat_env.gateway.get_payment(response.json()["transaction_id"])
    assert payment is not None
    assert (payment.succeeded, payment.gateway_status, payment.captured) == (False, "NOTPAY", 0)


async def test_unknown_or_impossible_transaction_is_none(wechat_env: WeChatEnv) -> None:
    assert await wechat_env.gateway.get_payment("4200" + "0" * 28) is None
    # Never sent: the client would put it in the path unescaped.
    assert await wechat_env.gateway.get_payment("../../refund/domestic/refunds/R-1") is None


async def test_transaction_read_on_a_5xx_is_unknown_never_a_missing_payment(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(700)
    await wechat_env.fault(method="GET", path_prefix="/v3/pay/", action="http_500", times=1)
    with pytest.raises(GatewayUnknownError):
        await wechat_env.gateway.get_payment(txn["transaction_id"])
    assert await wechat_env.gateway.get_payment(txn["transaction_id"]) is not None
