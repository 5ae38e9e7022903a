"""The WeChat Pay sandbox on the wire: as strict as the real gateway about who calls it, signed
answers, notification delivery and the fault switches the pipeline tests rely on."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType  # type: ignore[import-untyped]

from refunds.embedded.ports import free_port
from refunds.gateways.wechatpay_crypto import (
    build_authorization,
    load_private_key,
    load_public_key,
    response_message,
    rsa_verify,
)
from refunds.sandboxes.background import BackgroundServer
from refunds.sandboxes.wechatpay_sandbox import (
    WeChatPaySandbox,
    app_from_settings,
    create_app,
    sandbox_config_from_settings,
)
from refunds.settings import Settings
from tests.gateways.wechatpay_support import WeChatEnv, wait_for

REFUNDS = "/v3/refund/domestic/refunds"


async def signed_call(
    wechat_env: WeChatEnv,
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
    **auth: Any,
) -> httpx.Response:
    """A raw v3 call signed like `wechatpayv3` signs, with any part overridable to break it."""
    body = json.dumps(payload) if payload is not None else ""
    sign_body = auth.pop("sign_body", body)
    options: dict[str, Any] = {
        "method": method,
        "url": path,
        "body": sign_body,
        "mchid": wechat_env.settings.wechatpay_mchid,
        "serial_no": wechat_env.keys.merchant_cert_serial_no,
        "private_key": load_private_key(wechat_env.keys.merchant_private_key_pem()),
    }
    options.update(auth)
    headers = {"Authorization": build_authorization(**options)}
    headers["Content-Type"] = "application/json"
    return await wechat_env.http.request(
        method, wechat_env.sandbox_url + path, content=body, headers=headers
    )


def refund_body(txn: dict[str, Any], amount: int, notify_url: str, **extra: Any) -> dict:
    return {
        "transaction_id": txn["transaction_id"],
        "out_refund_no": extra.pop("out_refund_no", f"R{uuid.uuid4().hex[:20]}"),
        "reason": "test",
        "notify_url": notify_url,
        "amount": {"refund": amount, "total": txn["amount"], "currency": "CNY"},
        **extra,
    }


def notify_url(wechat_env: WeChatEnv, fail: int = 0) -> str:
    return f"{wechat_env.receiver_server.url}/notify?fail={fail}&key={uuid.uuid4().hex}"


def received_at(wechat_env: WeChatEnv, url: str) -> list[Any]:
    suffix = url.split("/notify", 1)[1]
    return [r for r in wechat_env.receiver.received if r.path == "/notify" + suffix]


# --- who may call --------------------------------------------------------------------------------


async def test_unsigned_request_is_401_sign_error(wechat_env: WeChatEnv) -> None:
    response = await wechat_env.http.get(f"{wechat_env.sandbox_url}{REFUNDS}/R1")
    assert response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"


async def test_request_signed_with_another_merchant_key_is_401(wechat_env: WeChatEnv) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = await signed_call(wechat_env, "GET", f"{REFUNDS}/R1", private_key=stranger)
    assert response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"


async def test_request_for_another_mchid_is_401(wechat_env: WeChatEnv) -> None:
    response = await signed_call(wechat_env, "GET", f"{REFUNDS}/R1", mchid="1999999999")
    assert response.status_code == 401


async def test_request_with_another_merchant_serial_is_401(wechat_env: WeChatEnv) -> None:
    response = await signed_call(wechat_env, "GET", f"{REFUNDS}/R1", serial_no="ABCDEF")
    assert response.status_code == 401


async def test_request_older_than_five_minutes_is_401(wechat_env: WeChatEnv) -> None:
    old = str(int(time.time()) - 301)
    response = await signed_call(wechat_env, "GET", f"{REFUNDS}/R1", timestamp=old)
    assert response.status_code == 401 and "timestamp" in response.json()["message"]


async def test_body_other_than_the_signed_one_is_401(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    payload = refund_body(txn, 100, notify_url(wechat_env))
    signed = json.dumps({**payload, "amount": {"refund": 1, "total": 1000, "currency": "CNY"}})
    response = await signed_call(wechat_env, "POST", REFUNDS, payload, sign_body=signed)
    assert response.status_code == 401
    assert (await wechat_env.sandbox_refunds(payload["out_refund_no"]))["refunds"] == []


async def test_every_answer_is_signed_by_the_platform_key(wechat_env: WeChatEnv) -> None:
    platform = load_public_key(wechat_env.keys.platform_public_key_pem())
    for response in (
        await signed_call(wechat_env, "GET", f"{REFUNDS}/R-none"),
        await wechat_env.http.get(f"{wechat_env.sandbox_url}{REFUNDS}/R-none"),
    ):
        headers = response.headers
        message = response_message(
            headers["wechatpay-timestamp"], headers["wechatpay-nonce"], response.text
        )
        assert rsa_verify(platform, message, headers["wechatpay-signature"])
        assert headers["wechatpay-serial"] == wechat_env.keys.platform_public_key_id
        assert headers["request-id"]


# --- refunds -------------------------------------------------------------------------------------


def official_client(wechat_env: WeChatEnv) -> WeChatPay:
    client = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=wechat_env.settings.wechatpay_mchid,
        private_key=wechat_env.keys.merchant_private_key_pem(),
        cert_serial_no=wechat_env.keys.merchant_cert_serial_no,
        appid=wechat_env.settings.wechatpay_appid,
        apiv3_key=wechat_env.settings.wechatpay_apiv3_key,
        public_key=wechat_env.keys.platform_public_key_pem(),
        public_key_id=wechat_env.keys.platform_public_key_id,
    )
    client._core._gate_way = wechat_env.sandbox_url
    return client


async def test_official_client_creates_and_queries_a_refund(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(888)
    client = official_client(wechat_env)
    code, text = await asyncio.to_thread(
        client.refund,
        out_refund_no="R-official-" + uuid.uuid4().hex[:8],
        amount={"refund": 88, "total": 888, "currency": "CNY"},
        transaction_id=txn["transaction_id"],
        notify_url=notify_url(wechat_env),
    )
    created = json.loads(text)
    assert code == 200 and created["status"] == "PROCESSING"
    assert created["amount"]["refund"] == 88 and created["amount"]["payer_refund"] == 88
    assert created["transaction_id"] == txn["transaction_id"] and created["refund_id"]
    code, text = await asyncio.to_thread(client.query_refund, created["out_refund_no"])
    assert code == 200 and json.loads(text)["refund_id"] == created["refund_id"]


async def test_create_by_out_trade_no_works_too(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(500)
    payload = refund_body(txn, 500, notify_url(wechat_env), out_trade_no=txn["out_trade_no"])
    del payload["transaction_id"]
    response = await signed_call(wechat_env, "POST", REFUNDS, payload)
    assert (
        response.status_code == 200 and response.json()["transaction_id"] == txn["transaction_id"]
    )


async def test_same_out_refund_no_twice_returns_the_same_refund_once(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    payload = refund_body(txn, 600, notify_url(wechat_env))
    first = await signed_call(wechat_env, "POST", REFUNDS, payload)
    second = await signed_call(wechat_env, "POST", REFUNDS, payload)
    assert first.json()["refund_id"] == second.json()["refund_id"]
    seen = await wechat_env.sandbox_refunds(payload["out_refund_no"])
    assert len(seen["refunds"]) == 1 and seen["create_requests"] == {payload["out_refund_no"]: 2}
    # Only 400 of 1000 is left: the repeat did not consume a second 600.
    other = await signed_call(
        wechat_env, "POST", REFUNDS, refund_body(txn, 400, notify_url(wechat_env))
    )
    assert other.status_code == 200


async def test_same_out_refund_no_with_another_amount_is_400(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    payload = refund_body(txn, 600, notify_url(wechat_env))
    await signed_call(wechat_env, "POST", REFUNDS, payload)
    payload["amount"]["refund"] = 500
    response = await signed_call(wechat_env, "POST", REFUNDS, payload)
    assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("amount", "status", "code"),
    [
        ({"refund": 1001, "total": 1000, "currency": "CNY"}, 400, "INVALID_REQUEST"),
        ({"refund": 100, "total": 999, "currency": "CNY"}, 400, "PARAM_ERROR"),
        ({"refund": 1.5, "total": 1000, "currency": "CNY"}, 400, "PARAM_ERROR"),
        ({"refund": 100, "total": 1000, "currency": "USD"}, 400, "PARAM_ERROR"),
    ],
)
async def test_invalid_amounts_are_refused(
    wechat_env: WeChatEnv, amount: dict[str, Any], status: int, code: str
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    payload = {**refund_body(txn, 1, notify_url(wechat_env)), "amount": amount}
    response = await signed_call(wechat_env, "POST", REFUNDS, payload)
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_unknown_transaction_is_404_resource_not_exists(wechat_env: WeChatEnv) -> None:
    txn = {"transaction_id": "4200000000000000000000000001", "amount": 100}
    response = await signed_call(
        wechat_env, "POST", REFUNDS, refund_body(txn, 100, notify_url(wechat_env))
    )
    assert response.status_code == 404 and response.json()["code"] == "RESOURCE_NOT_EXISTS"


async def test_unknown_refund_query_is_404(wechat_env: WeChatEnv) -> None:
    response = await signed_call(wechat_env, "GET", f"{REFUNDS}/R-nobody")
    assert response.status_code == 404 and response.json()["code"] == "RESOURCE_NOT_EXISTS"


# --- notifications -------------------------------------------------------------------------------


async def test_notification_is_retried_until_the_receiver_accepts(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    url = notify_url(wechat_env, fail=2)
    payload = refund_body(txn, 100, url)
    await signed_call(wechat_env, "POST", REFUNDS, payload)
    deliveries = await wait_for(lambda: received_at(wechat_env, url), 3, timeout=5)
    assert [d.answered for d in deliveries] == [500, 500, 204]
    assert len({json.loads(d.body)["id"] for d in deliveries}) == 1
    [record] = await wechat_env.sandbox_notifications(payload["out_refund_no"])
    assert record["delivered"] and [a["status"] for a in record["attempts"]] == [500, 500, 204]


async def test_no_notify_never_notifies_but_the_query_shows_success(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    payload = refund_body(txn, 100, notify_url(wechat_env))
    await wechat_env.fault(refund_no=payload["out_refund_no"], action="no_notify")
    await signed_call(wechat_env, "POST", REFUNDS, payload)
    await asyncio.sleep(0.5)
    assert await wechat_env.sandbox_notifications(payload["out_refund_no"]) == []
    queried = await signed_call(wechat_env, "GET", f"{REFUNDS}/{payload['out_refund_no']}")
    assert queried.json()["status"] == "SUCCESS" and queried.json()["success_time"]


async def test_notify_before_response_delivers_success_before_create_answers(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    url = notify_url(wechat_env)
    payload = refund_body(txn, 100, url)
    await wechat_env.fault(refund_no=payload["out_refund_no"], action="notify_before_response")
    response = await signed_call(wechat_env, "POST", REFUNDS, payload)
    assert response.json()["status"] == "PROCESSING"  # the answer was computed before
    [delivery] = received_at(wechat_env, url)  # ...but the notification was already delivered
    assert json.loads(delivery.body)["event_type"] == "REFUND.SUCCESS"


async def test_out_of_order_sends_a_stale_abnormal_after_the_success(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    url = notify_url(wechat_env)
    payload = refund_body(txn, 100, url)
    await wechat_env.fault(refund_no=payload["out_refund_no"], action="out_of_order")
    await signed_call(wechat_env, "POST", REFUNDS, payload)
    first, stale = await wait_for(lambda: received_at(wechat_env, url), 2, timeout=5)
    parsed = [wechat_env.gateway.parse_notification(d.headers, d.body) for d in (first, stale)]
    assert [p.event_type for p in parsed] == ["REFUND.SUCCESS", "REFUND.ABNORMAL"]
    assert parsed[0].notification_id != parsed[1].notification_id
    assert parsed[1].payload["refund_status"] == "ABNORMAL"


async def test_out_of_order_can_send_a_stale_closed(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    url = notify_url(wechat_env)
    payload = refund_body(txn, 100, url)
    rno = payload["out_refund_no"]
    await wechat_env.fault(refund_no=rno, action="out_of_order", stale_status="CLOSED")
    await signed_call(wechat_env, "POST", REFUNDS, payload)
    deliveries = await wait_for(lambda: received_at(wechat_env, url), 2, timeout=5)
    events = [json.loads(d.body)["event_type"] for d in deliveries]
    assert events == ["REFUND.SUCCESS", "REFUND.CLOSED"]


async def test_resend_replays_the_same_notification(wechat_env: WeChatEnv) -> None:
    txn = await wechat_env.paid_transaction(1000)
    url = notify_url(wechat_env)
    payload = refund_body(txn, 100, url)
    await signed_call(wechat_env, "POST", REFUNDS, payload)
    [first] = await wait_for(lambda: received_at(wechat_env, url), 1, timeout=5)
    sent_id = json.loads(first.body)["id"]
    resent = await wechat_env.http.post(
        f"{wechat_env.sandbox_url}/sandbox/notifications/resend", json={"id": sent_id}
    )
    assert resent.json() == {"id": sent_id, "delivered": True}
    assert [r.body for r in received_at(wechat_env, url)] == [first.body, first.body]


# --- request faults ------------------------------------------------------------------------------


async def test_request_faults_match_method_and_prefix_and_run_out(wechat_env: WeChatEnv) -> None:
    await wechat_env.fault(method="POST", path_prefix="/v3/refund", action="http_500", times=2)
    assert (await signed_call(wechat_env, "GET", f"{REFUNDS}/R-x")).status_code == 404
    txn = await wechat_env.paid_transaction(1000)
    payload = refund_body(txn, 100, notify_url(wechat_env))
    statuses = [
        (await signed_call(wechat_env, "POST", REFUNDS, payload)).status_code for _ in range(3)
    ]
    assert statuses == [500, 500, 200]


async def test_rate_limit_fault_is_429_frequency_limited(wechat_env: WeChatEnv) -> None:
    await wechat_env.fault(path_prefix="/v3/", action="rate_limit")
    response = await signed_call(wechat_env, "GET", f"{REFUNDS}/R-x")
    assert response.status_code == 429 and response.json()["code"] == "FREQUENCY_LIMITED"


async def test_deleted_faults_no_longer_apply(wechat_env: WeChatEnv) -> None:
    await wechat_env.fault(action="http_500", times=5)
    await wechat_env.clear_faults()
    assert (await signed_call(wechat_env, "GET", f"{REFUNDS}/R-x")).status_code == 404


async def test_unknown_fault_action_is_400(wechat_env: WeChatEnv) -> None:
    response = await wechat_env.http.post(
        f"{wechat_env.sandbox_url}/sandbox/faults", json={"action": "boom"}
    )
    assert response.status_code == 400


# --- persistence ---------------------------------------------------------------------------------


async def test_state_file_survives_a_restart_and_pending_refunds_still_finish(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    state_file = tmp_path / "wechatpay_sandbox.json"
    slow = sandbox_config_from_settings(settings, refund_delay=60, state_file=state_file)
    sandbox = WeChatPaySandbox(slow)
    txn = sandbox.state.add_transaction(1000, "CNY", None)
    body = {"transaction_id": txn.transaction_id, "out_refund_no": "R-persist"}
    sandbox.state.create_refund({**body, "amount": {"refund": 300, "total": 1000}})

    fast = sandbox_config_from_settings(settings, refund_delay=0.05, state_file=state_file)
    server = BackgroundServer(create_app(fast), free_port())
    server.start()
    try:
        async with httpx.AsyncClient() as http:
            url = f"{server.url}/sandbox/refunds?refund_no=R-persist"

            async def statuses() -> list[str]:
                return [r["status"] for r in (await http.get(url)).json()["refunds"]]

            for _ in range(100):
                if await statuses() == ["SUCCESS"]:
                    break
                await asyncio.sleep(0.02)
            assert await statuses() == ["SUCCESS"]
    finally:
        server.stop()
    saved = json.loads(state_file.read_text())
    assert saved["refunds"]["R-persist"]["refund"] == 300
    assert saved["transactions"][txn.transaction_id]["amount"] == 1000


async def test_app_from_settings_keeps_its_state_in_the_data_dir(tmp_path: Path) -> None:
    app = app_from_settings(Settings(data_dir=tmp_path), refund_delay=0.1)
    app.state.sandbox.state.add_transaction(100, "CNY", "O-1")
    assert (tmp_path / "wechatpay_sandbox.json").exists()


async def abnormal_refund(wechat_env: WeChatEnv) -> dict[str, Any]:
    txn = await wechat_env.paid_transaction(1000)
    payload = refund_body(txn, 300, notify_url(wechat_env))
    await wechat_env.fault(refund_no=payload["out_refund_no"], action="abnormal")
    await signed_call(wechat_env, "POST", REFUNDS, payload)

    async def status() -> str:
        answer = await signed_call(wechat_env, "GET", f"{REFUNDS}/{payload['out_refund_no']}")
        return str(answer.json()["status"])

    deadline = asyncio.get_running_loop().time() + 5
    while await status() != "ABNORMAL":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    return payload


async def test_an_abnormal_refund_settled_offline_is_success_in_the_query_and_notified(
    wechat_env: WeChatEnv,
) -> None:
    payload = await abnormal_refund(wechat_env)
    no = payload["out_refund_no"]
    moved = await wechat_env.http.post(
        f"{wechat_env.sandbox_url}/sandbox/refunds/{no}/status", json={"status": "SUCCESS"}
    )
    assert moved.status_code == 200, moved.text
    queried = (await signed_call(wechat_env, "GET", f"{REFUNDS}/{no}")).json()
    assert (queried["status"], queried["amount"]["refund"]) == ("SUCCESS", 300)
    assert queried["success_time"]
    sent = await wechat_env.sandbox_notifications(no)
    assert sent[-1]["refund_status"] == "SUCCESS"


async def test_a_settlement_can_be_silent_and_success_is_final(wechat_env: WeChatEnv) -> None:
    payload = await abnormal_refund(wechat_env)
    no, control = payload["out_refund_no"], f"{wechat_env.sandbox_url}/sandbox/refunds"
    before = len(await wechat_env.sandbox_notifications(no))
    quiet = await wechat_env.http.post(
        f"{control}/{no}/status", json={"status": "SUCCESS", "notify": False}
    )
    assert quiet.status_code == 200
    assert len(await wechat_env.sandbox_notifications(no)) == before
    again = await wechat_env.http.post(f"{control}/{no}/status", json={"status": "ABNORMAL"})
    assert (again.status_code, again.json()["code"]) == (400, "INVALID_REQUEST")
    missing = await wechat_env.http.post(f"{control}/nope/status", json={"status": "SUCCESS"})
    assert missing.status_code == 404
