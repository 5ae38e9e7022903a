"""The refund workflow end to end on WeChat Pay v3, through HTTP against the real stack (issue 4).

Every test asserts the money on the order, the refund's status and timeline, and what the WeChat
Pay sandbox received. Notifications that a test forges are built exactly as the sandbox builds
real ones (platform key, APIv3 key), so each rejection is shown to be caused by the one thing
the test broke: the same notification, unbroken, is accepted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from refunds.gateways.wechatpay_crypto import (
    load_private_key,
    platform_headers,
)
from refunds.gateways.wechatpay_keys import ensure_dev_keys
from tests.factories import Shop, events, sandbox, uid
from tests.gateways.wechatpay_support import success_envelope
from tests.stack import Stack

WEBHOOK = "/v1/webhooks/wechatpay"
CREATE_PATH = "/v3/refund/domestic/refunds"

# --- the WeChat Pay sandbox ----------------------------------------------------------------------


async def fault(stack: Stack, **body: Any) -> None:
    await sandbox(stack.wechat_url, "POST", "/sandbox/faults", json=body)


async def gateway_refunds(stack: Stack, refund_no: str) -> tuple[list[dict[str, Any]], int]:
    """What the sandbox holds for this out_refund_no, and how many creates reached its handler."""
    body = await sandbox(
        stack.wechat_url, "GET", "/sandbox/refunds", params={"refund_no": refund_no}
    )
    return body["refunds"], int(body["create_requests"].get(refund_no, 0))


async def sent_notifications(stack: Stack, refund_no: str) -> list[dict[str, Any]]:
    body = await sandbox(
        stack.wechat_url, "GET", "/sandbox/notifications", params={"refund_no": refund_no}
    )
    return list(body["notifications"])


def wire(refund: dict[str, Any]) -> tuple[int, int, str, str]:
    amount = refund["amount"]
    return amount["refund"], amount["total"], amount["currency"], refund["status"]


# --- the shop ------------------------------------------------------------------------------------


async def approved_refund(
    shop: Shop, order: dict[str, Any], amount: int, *actions: str
) -> dict[str, Any]:
    """A refund with the sandbox faults `actions` armed for it, requested and approved."""
    refund_no = uid("rf")
    for action in actions:
        await fault(shop.stack, refund_no=refund_no, action=action)
    refund = await shop.refund(order, amount, refund_no=refund_no)
    assert refund["status"] == "pending_approval"
    response = await shop.approve(refund_no)
    assert response.status_code == 200, response.text
    return refund


async def resolve(
    shop: Shop, refund_no: str, outcome: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve",
        json={"outcome": outcome, "note": f"ops checked: {outcome}"},
        headers=headers or shop.ops,
    )


def money(order: dict[str, Any]) -> tuple[str, int, int, int]:
    return (
        order["status"],
        order["refunded_amount"],
        order["reserved_amount"],
        order["refundable_amount"],
    )


def the(refund: dict[str, Any], event: str) -> dict[str, Any]:
    """The one timeline entry named `event` (fails if there are none or several)."""
    found = [e for e in refund["timeline"] if e["event"] == event]
    assert len(found) == 1, f"{event} x{len(found)}: {events(refund)}"
    return found[0]


# --- Temporal ------------------------------------------------------------------------------------


async def signals_received(temporal: Client, refund_no: str) -> int:
    """Signals the refund's workflow got: each accepted notification is one."""
    history = await temporal.get_workflow_handle(f"refund-{refund_no}").fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )


async def activity_attempts(temporal: Client, refund_no: str, activity: str) -> list[int]:
    """The attempt number each completed run of `activity` ended on."""
    history = await temporal.get_workflow_handle(f"refund-{refund_no}").fetch_history()
    scheduled = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


# --- notifications as the WeChat Pay platform sends them -----------------------------------------


def success_resource(stack: Stack, order: dict[str, Any], refund: dict[str, Any]) -> dict[str, Any]:
    """The plaintext of a REFUND.SUCCESS notification for this refund."""
    return {
        "mchid": stack.settings.wechatpay_mchid,
        "out_trade_no": order["order_no"],
        "transaction_id": order["payment_ref"],
        "out_refund_no": refund["refund_no"],
        "refund_id": "50" + "3" * 27,
        "refund_status": "SUCCESS",
        "success_time": "2024-01-01T10:00:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": order["paid_amount"],
            "refund": refund["amount"],
            "payer_total": order["paid_amount"],
            "payer_refund": refund["amount"],
        },
    }


def envelope(
    stack: Stack, resource: dict[str, Any], notification_id: str, tamper: bool = False
) -> str:
    """The JSON body: `resource` sealed with the APIv3 key; `tamper` flips one ciphertext bit."""
    apiv3_key = stack.settings.wechatpay_apiv3_key
    assert apiv3_key is not None
    body = success_envelope(apiv3_key, resource, notification_id)
    if tamper:
        sealed = bytearray(base64.b64decode(body["resource"]["ciphertext"]))
        sealed[len(sealed) // 3] ^= 0x01
        body["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def signed(
    stack: Stack,
    body: str,
    timestamp: int | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> dict[str, str]:
    """`Wechatpay-*` headers over `body`, by the platform key unless another `key` is given."""
    keys = ensure_dev_keys(stack.settings.data_dir)
    signer = key or load_private_key(keys.platform_private_key_pem())
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    headers = platform_headers(signer, keys.platform_public_key_id, body, timestamp=stamp)
    return {**headers, "Content-Type": "application/json"}


async def deliver(shop: Shop, body: str, headers: dict[str, str]) -> httpx.Response:
    return await shop.http.post(WEBHOOK, content=body.encode(), headers=headers)


def forged(stack: Stack, body: str, how: str) -> tuple[str, dict[str, str]]:
    """A notification whose signature does not verify: `how` says what the forger did."""
    if how == "signed_by_another_key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return body, signed(stack, body, key=other)
    if how == "body_changed_after_signing":
        headers = signed(stack, body)
        return body.replace("退款成功", "退款成功 "), headers
    if how == "signature_garbled":
        headers = signed(stack, body)
        headers["Wechatpay-Signature"] = "Zm9yZ2Vk" + headers["Wechatpay-Signature"][8:]
        return body, headers
    raise AssertionError(how)


async def pending_refund(shop: Shop) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order and a refund of it that nothing will move on its own: it waits for approval
    (the approval timeout is minutes), never reaches the gateway, so no poll and no genuine
    notification can race the forged ones."""
    order = await shop.order("wechatpay", amount=3000)
    applied = await shop.refund(order, 3000)
    return order, await shop.get_refund(applied["refund_no"])  # with its timeline


async def assert_rejected_and_nothing_changed(
    shop: Shop,
    temporal: Client,
    response: httpx.Response,
    order: dict[str, Any],
    refund: dict[str, Any],
) -> None:
    assert response.status_code in (400, 401), response.text
    answer = response.json()
    assert answer["code"] == "FAIL" and isinstance(answer["message"], str) and answer["message"]
    # The webhook signals before it answers, so a rejection is final once the answer is back.
    assert await signals_received(temporal, refund["refund_no"]) == 0
    still = await shop.get_refund(refund["refund_no"])
    assert still["status"] == "pending_approval"
    assert still["timeline"] == refund["timeline"]
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("paid", 0, 3000, 0)
    assert await gateway_refunds(shop.stack, refund["refund_no"]) == ([], 0)


async def assert_genuine_twin_is_accepted(
    shop: Shop, temporal: Client, resource: dict[str, Any], notification_id: str
) -> None:
    """Control: the untampered notification, same id, goes through. So the rejection above was
    for the tampering (not a builder mistake), and the rejected id was not recorded as seen."""
    body = envelope(shop.stack, resource, notification_id)
    response = await deliver(shop, body, signed(shop.stack, body))
    assert response.status_code == 204, response.text
    assert await signals_received(temporal, resource["out_refund_no"]) == 1


# --- happy paths ---------------------------------------------------------------------------------


async def test_full_refund_succeeds_refunds_the_order_and_is_one_cny_refund_at_wechatpay(
    shop: Shop, temporal: Client
) -> None:
    coupon = uid("cpn")
    order = await shop.order("wechatpay", amount=10000, points_used=300, coupon_code=coupon)
    refund = await approved_refund(shop, order, 10000)
    refund_no = refund["refund_no"]
    done = await shop.wait_status(refund_no, "succeeded")
    assert {"requested", "approved", "gateway_submitted", "points_restored"} <= set(events(done))
    succeeded = the(done, "succeeded")["detail"]
    assert (succeeded["from"], succeeded["to"], succeeded["gateway_status"]) == (
        "processing",
        "succeeded",
        "succeeded",
    )
    assert done["approved_by"] and done["completed_at"]
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("refunded", 10000, 10000, 0)
    assert after["restored_points"] == 300
    assert after["restocked_items"] == {order["items"][0]["sku"]: 2}
    assert (after["coupon"]["status"], after["coupon"]["released_by_refund_no"]) == (
        "available",
        refund_no,
    )
    [at_gateway], creates = await gateway_refunds(shop.stack, refund_no)
    assert creates == 1
    assert wire(at_gateway) == (10000, 10000, "CNY", "SUCCESS")
    assert at_gateway["transaction_id"] == order["payment_ref"]
    assert at_gateway["refund_id"] == done["gateway_refund_id"]
    assert await signals_received(temporal, refund_no) == 1


async def test_two_partial_refunds_each_send_their_amount_against_the_paid_total(
    shop: Shop,
) -> None:
    coupon = uid("cpn")
    order = await shop.order("wechatpay", amount=10000, points_used=100, coupon_code=coupon)
    first = await approved_refund(shop, order, 4000)
    await shop.wait_status(first["refund_no"], "succeeded")
    halfway = await shop.get_order(order["order_no"])
    assert money(halfway) == ("paid", 4000, 4000, 6000)
    assert halfway["restored_points"] == 40  # 100 * 4000 / 10000, rounded down
    assert halfway["coupon"]["status"] == "used"  # released only when fully refunded
    second = await approved_refund(shop, order, 6000)
    await shop.wait_status(second["refund_no"], "succeeded")
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("refunded", 10000, 10000, 0)
    assert after["restored_points"] == 100  # the completing refund restores the remainder
    assert after["coupon"]["released_by_refund_no"] == second["refund_no"]
    for refund in (first, second):
        [at_gateway], creates = await gateway_refunds(shop.stack, refund["refund_no"])
        assert creates == 1
        assert wire(at_gateway) == (refund["amount"], 10000, "CNY", "SUCCESS")
        assert at_gateway["transaction_id"] == order["payment_ref"]
    over = await shop.request_refund(order, 1)
    assert over.status_code == 409
    assert over.json()["error"]["code"] in ("order_not_paid", "refund_exceeds_refundable")


# --- forged, stale and tampered notifications ----------------------------------------------------


@pytest.mark.parametrize(
    "how", ["signed_by_another_key", "body_changed_after_signing", "signature_garbled"]
)
async def test_notification_with_a_bad_signature_is_rejected_and_changes_nothing(
    shop: Shop, temporal: Client, how: str
) -> None:
    order, refund = await pending_refund(shop)
    resource = success_resource(shop.stack, order, refund)
    notification_id = str(uuid.uuid4())
    body, headers = forged(shop.stack, envelope(shop.stack, resource, notification_id), how)
    response = await deliver(shop, body, headers)
    assert response.status_code == 401, response.text
    await assert_rejected_and_nothing_changed(shop, temporal, response, order, refund)
    await assert_genuine_twin_is_accepted(shop, temporal, resource, notification_id)


async def test_notification_without_signature_headers_is_rejected(
    shop: Shop, temporal: Client
) -> None:
    order, refund = await pending_refund(shop)
    resource = success_resource(shop.stack, order, refund)
    notification_id = str(uuid.uuid4())
    body = envelope(shop.stack, resource, notification_id)
    response = await deliver(shop, body, {"Content-Type": "application/json"})
    await assert_rejected_and_nothing_changed(shop, temporal, response, order, refund)
    await assert_genuine_twin_is_accepted(shop, temporal, resource, notification_id)


@pytest.mark.parametrize("skew", [-600, -301, 600])
async def test_correctly_signed_notification_outside_five_minutes_is_rejected(
    shop: Shop, temporal: Client, skew: int
) -> None:
    order, refund = await pending_refund(shop)
    resource = success_resource(shop.stack, order, refund)
    notification_id = str(uuid.uuid4())
    body = envelope(shop.stack, resource, notification_id)
    headers = signed(shop.stack, body, timestamp=int(time.time()) + skew)
    response = await deliver(shop, body, headers)
    assert response.status_code == 401, response.text
    await assert_rejected_and_nothing_changed(shop, temporal, response, order, refund)
    await assert_genuine_twin_is_accepted(shop, temporal, resource, notification_id)


async def test_correctly_signed_notification_whose_ciphertext_was_tampered_is_rejected(
    shop: Shop, temporal: Client
) -> None:
    order, refund = await pending_refund(shop)
    resource = success_resource(shop.stack, order, refund)
    notification_id = str(uuid.uuid4())
    # Signed over the tampered body: the signature verifies, only AES-GCM's tag check fails.
    body = envelope(shop.stack, resource, notification_id, tamper=True)
    response = await deliver(shop, body, signed(shop.stack, body))
    assert response.status_code == 400, response.text
    await assert_rejected_and_nothing_changed(shop, temporal, response, order, refund)
    await assert_genuine_twin_is_accepted(shop, temporal, resource, notification_id)


# --- delivery quirks -----------------------------------------------------------------------------


async def test_same_notification_delivered_twice_has_one_effect(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order("wechatpay", amount=2000)
    refund = await approved_refund(shop, order, 2000, "duplicate_notify")
    refund_no = refund["refund_no"]
    done = await shop.wait_status(refund_no, "succeeded")
    first, again = await sent_notifications(shop.stack, refund_no)
    assert first["id"] == again["id"] and again["duplicate"]
    # A duplicate is acknowledged (2xx), or WeChat Pay would keep retrying it.
    assert [a["status"] for a in first["attempts"] + again["attempts"]] == [204, 204]
    resent = await sandbox(
        shop.stack.wechat_url, "POST", "/sandbox/notifications/resend", json={"id": first["id"]}
    )
    assert resent["delivered"] is True
    assert await signals_received(temporal, refund_no) == 1
    final = await shop.get_refund(refund_no)
    assert the(final, "succeeded")["detail"]["gateway_status"] == "succeeded"
    assert final["timeline"] == done["timeline"]
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("refunded", 2000, 2000, 0)
    [at_gateway], creates = await gateway_refunds(shop.stack, refund_no)
    assert (wire(at_gateway), creates) == ((2000, 2000, "CNY", "SUCCESS"), 1)


async def test_stale_abnormal_arriving_after_success_never_moves_the_refund_back(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order("wechatpay", amount=1800)
    refund = await approved_refund(shop, order, 1800, "out_of_order")
    refund_no = refund["refund_no"]
    done = await shop.wait_status(refund_no, "succeeded")
    for _ in range(50):  # the stale one leaves right after the success
        sent = await sent_notifications(shop.stack, refund_no)
        if len(sent) == 2 and all(n["delivered"] for n in sent):
            break
        await asyncio.sleep(0.1)
    assert [(n["event_type"], n["delivered"]) for n in sent] == [
        ("REFUND.SUCCESS", True),
        ("REFUND.ABNORMAL", True),  # acknowledged, or WeChat Pay would retry it for a day
    ]
    final = await shop.get_refund(refund_no)
    assert final["status"] == "succeeded"
    assert "gateway_abnormal" not in events(final) and final["timeline"] == done["timeline"]
    assert money(await shop.get_order(order["order_no"])) == ("refunded", 1800, 1800, 0)
    [at_gateway], creates = await gateway_refunds(shop.stack, refund_no)
    assert (wire(at_gateway), creates) == ((1800, 1800, "CNY", "SUCCESS"), 1)


async def test_success_notified_before_the_create_answer_is_one_success(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order("wechatpay", amount=2600)
    refund = await approved_refund(shop, order, 2600, "notify_before_response")
    refund_no = refund["refund_no"]
    done = await shop.wait_status(refund_no, "succeeded")
    [sent] = await sent_notifications(shop.stack, refund_no)
    assert (sent["refund_status"], sent["attempts"][-1]["status"]) == ("SUCCESS", 204)
    assert await signals_received(temporal, refund_no) == 1
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("refunded", 2600, 2600, 0)
    [at_gateway], creates = await gateway_refunds(shop.stack, refund_no)
    assert (wire(at_gateway), creates) == ((2600, 2600, "CNY", "SUCCESS"), 1)
    # The create answer (PROCESSING) came after SUCCESS: one gateway outcome on the audit trail.
    assert the(done, "gateway_submitted")["detail"]["gateway_status"] == "processing"
    assert the(done, "succeeded")["detail"]["via"] == "webhook"


async def test_refund_without_notification_is_finished_by_polling(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order("wechatpay", amount=2500)
    refund = await approved_refund(shop, order, 2500, "no_notify")
    refund_no = refund["refund_no"]
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert the(done, "succeeded")["detail"]["via"] == "poll"
    assert await sent_notifications(shop.stack, refund_no) == []
    assert await signals_received(temporal, refund_no) == 0
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("refunded", 2500, 2500, 0)
    [at_gateway], creates = await gateway_refunds(shop.stack, refund_no)
    assert (wire(at_gateway), creates) == ((2500, 2500, "CNY", "SUCCESS"), 1)


# --- abnormal, closed, transient errors ----------------------------------------------------------


async def test_abnormal_refund_resolved_succeeded_by_ops_keeps_the_money_refunded(
    shop: Shop,
) -> None:
    order = await shop.order("wechatpay", amount=5000, points_used=50)
    refund = await approved_refund(shop, order, 5000, "abnormal")
    refund_no = refund["refund_no"]
    abnormal = await shop.wait_status(refund_no, "abnormal")
    reason = the(abnormal, "gateway_abnormal")["detail"]["failure_reason"]
    assert reason.startswith("wechatpay_abnormal")
    # Abnormal is not final: the amount stays reserved while ops look.
    assert money(await shop.get_order(order["order_no"])) == ("paid", 0, 5000, 0)
    [at_gateway], _ = await gateway_refunds(shop.stack, refund_no)
    assert wire(at_gateway) == (5000, 5000, "CNY", "ABNORMAL")
    response = await resolve(shop, refund_no, "succeeded")
    assert response.status_code == 200, response.text
    done = await shop.wait_status(refund_no, "succeeded")
    resolved = the(done, "resolved_succeeded")
    assert resolved["actor"].startswith("ops-")
    assert resolved["detail"]["note"] == "ops checked: succeeded"
    assert "succeeded" not in events(done)  # the outcome is ops', not the gateway's
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("refunded", 5000, 5000, 0)
    assert after["restored_points"] == 50


async def test_abnormal_refund_cannot_be_resolved_failed_while_wechat_may_still_pay_it(
    shop: Shop,
) -> None:
    """WeChat Pay's ABNORMAL is not a refusal: the refund waits at WeChat (the payer's card
    closed) and the merchant settles it there, so releasing the amount could pay it twice."""
    order = await shop.order("wechatpay", amount=5000, points_used=50)
    refund = await approved_refund(shop, order, 3000, "abnormal")
    refund_no = refund["refund_no"]
    await shop.wait_status(refund_no, "abnormal")
    assert money(await shop.get_order(order["order_no"])) == ("paid", 0, 3000, 2000)
    response = await resolve(shop, refund_no, "failed")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "gateway_refund_pending"
    still = await shop.get_refund(refund_no)
    assert still["status"] == "abnormal"
    assert "resolved_failed" not in events(still)
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("paid", 0, 3000, 2000)
    assert after["restored_points"] == 0
    too_much = await shop.request_refund(order, 2001)
    assert too_much.status_code == 409, too_much.text


async def test_resolve_is_ops_only_403_and_only_for_abnormal_refunds_409(shop: Shop) -> None:
    order = await shop.order("wechatpay", amount=4000)
    abnormal = await approved_refund(shop, order, 1000, "abnormal")
    await shop.wait_status(abnormal["refund_no"], "abnormal")
    for role in (shop.customer, shop.approver, shop.admin):
        response = await resolve(shop, abnormal["refund_no"], "succeeded", headers=role)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    assert (await shop.get_refund(abnormal["refund_no"]))["status"] == "abnormal"
    pending = await shop.refund(order, 1000)
    response = await resolve(shop, pending["refund_no"], "succeeded")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "refund_not_abnormal"
    succeeded = await approved_refund(shop, order, 1000)
    await shop.wait_status(succeeded["refund_no"], "succeeded")
    response = await resolve(shop, succeeded["refund_no"], "failed")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "refund_not_abnormal"
    assert (await shop.get_refund(succeeded["refund_no"]))["status"] == "succeeded"
    first = await resolve(shop, abnormal["refund_no"], "succeeded")
    assert first.status_code == 200, first.text
    await shop.wait_status(abnormal["refund_no"], "succeeded")
    twice = await resolve(shop, abnormal["refund_no"], "failed")
    assert twice.status_code == 409, twice.text
    assert twice.json()["error"]["code"] == "refund_not_abnormal"
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("paid", 2000, 3000, 1000)  # the pending 1000 stays reserved


async def test_closed_refund_fails_and_the_amount_is_refundable_again(shop: Shop) -> None:
    order = await shop.order("wechatpay", amount=1800, points_used=18)
    refund = await approved_refund(shop, order, 1800, "closed")
    failed = await shop.wait_status(refund["refund_no"], "failed")
    detail = the(failed, "gateway_failed")["detail"]
    assert detail["failure_reason"].startswith("wechatpay_closed")
    assert "points_restored" not in events(failed)
    after = await shop.get_order(order["order_no"])
    assert money(after) == ("paid", 0, 0, 1800)
    assert after["restored_points"] == 0
    [at_gateway], _ = await gateway_refunds(shop.stack, refund["refund_no"])
    assert wire(at_gateway) == (1800, 1800, "CNY", "CLOSED")
    # CLOSED is final for that out_refund_no: a new attempt is a new refund.
    retry = await approved_refund(shop, order, 1800)
    await shop.wait_status(retry["refund_no"], "succeeded")
    assert money(await shop.get_order(order["order_no"])) == ("refunded", 1800, 1800, 0)


async def test_gateway_5xx_twice_then_success_is_one_refund_at_wechatpay(
    shop: Shop, temporal: Client
) -> None:
    order = await shop.order("wechatpay", amount=1500)
    refund_no = uid("rf")
    await shop.refund(order, 1500, refund_no=refund_no)
    # Armed last, just before the approval: the next two create calls, whoever makes them.
    await fault(shop.stack, action="http_500", times=2, method="POST", path_prefix=CREATE_PATH)
    assert (await shop.approve(refund_no)).status_code == 200
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert await activity_attempts(temporal, refund_no, "refund_at_gateway") == [3]
    the(done, "gateway_submitted")
    the(done, "succeeded")
    [at_gateway], creates = await gateway_refunds(shop.stack, refund_no)
    assert (wire(at_gateway), creates) == ((1500, 1500, "CNY", "SUCCESS"), 1)
    assert money(await shop.get_order(order["order_no"])) == ("refunded", 1500, 1500, 0)
