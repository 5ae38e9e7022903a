"""The minimized records kept of gateway notifications: each field kept, masked or dropped."""

from __future__ import annotations

from typing import Any

import pytest

from refunds.gateways.records import mask_account, stripe_record, wechatpay_record

WECHAT_ENVELOPE: dict[str, Any] = {
    "id": "EV-2018022511223320873",
    "create_time": "2018-06-08T10:34:56+08:00",
    "resource_type": "encrypt-resource",
    "event_type": "REFUND.SUCCESS",
    "summary": "退款成功",
    "resource": {"ciphertext": "...", "nonce": "...", "associated_data": "refund"},
}
WECHAT_RESOURCE: dict[str, Any] = {
    "mchid": "1900000100",
    "out_trade_no": "1217752501201407033233368018",
    "transaction_id": "1217752501201407033233368018",
    "out_refund_no": "R-1",
    "refund_id": "50000000382019052709732678859",
    "refund_status": "SUCCESS",
    "success_time": "2018-06-08T10:34:56+08:00",
    "user_received_account": "招商银行信用卡6214830201230403",
    "amount": {"total": 999, "refund": 999, "payer_total": 999, "payer_refund": 999},
    "promotion_detail": [{"promotion_id": "109519", "scope": "SINGLE"}],
    "sp_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("mchid", "1900000100"),
        ("out_trade_no", "1217752501201407033233368018"),
        ("transaction_id", "1217752501201407033233368018"),
        ("out_refund_no", "R-1"),
        ("refund_id", "50000000382019052709732678859"),
        ("refund_status", "SUCCESS"),
        ("success_time", "2018-06-08T10:34:56+08:00"),
        ("amount", {"total": 999, "refund": 999, "payer_total": 999, "payer_refund": 999}),
        ("user_received_account", "招商银行信用卡0403"),
        (
            "event",
            {
                "id": "EV-2018022511223320873",
                "create_time": "2018-06-08T10:34:56+08:00",
                "event_type": "REFUND.SUCCESS",
                "resource_type": "encrypt-resource",
            },
        ),
    ],
)
def test_wechatpay_record_keeps_what_reconciliation_needs(field: str, expected: object) -> None:
    assert wechatpay_record(WECHAT_ENVELOPE, WECHAT_RESOURCE)[field] == expected


@pytest.mark.parametrize("field", ["promotion_detail", "sp_openid", "resource", "summary"])
def test_wechatpay_record_drops_fields_it_does_not_name(field: str) -> None:
    record = wechatpay_record(WECHAT_ENVELOPE, WECHAT_RESOURCE)
    assert field not in record and field not in record["event"]


def test_wechatpay_record_never_holds_the_full_account_number() -> None:
    record = wechatpay_record(WECHAT_ENVELOPE, WECHAT_RESOURCE)
    assert "6214830201230403" not in repr(record)


@pytest.mark.parametrize(
    ("label", "masked"),
    [
        ("招商银行信用卡0403", "招商银行信用卡0403"),
        ("招商银行信用卡6214830201230403", "招商银行信用卡0403"),
        ("招商银行信用卡6214****0403", "招商银行信用卡0403"),
        ("支付用户零钱", "支付用户零钱"),
        ("6214830201230403", "0403"),
        ("银" * 100 + "1234", "银" * 32 + "1234"),
        (None, None),
        (12345678, None),
    ],
)
def test_account_label_keeps_the_bank_name_and_the_last_four_digits(
    label: object, masked: str | None
) -> None:
    assert mask_account(label) == masked


def stripe_charge_event() -> dict[str, Any]:
    refund = {
        "id": "re_1",
        "object": "refund",
        "amount": 500,
        "currency": "usd",
        "status": "succeeded",
        "failure_reason": None,
        "reason": "requested_by_customer",
        "created": 1700000000,
        "payment_intent": "pi_1",
        "charge": "ch_1",
        "metadata": {"refund_no": "R-1", "order_no": "O-1", "note": "call me at 555-0100"},
        "destination_details": {"card": {"reference": "ARN123"}},
    }
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 1000,
        "amount_refunded": 500,
        "currency": "usd",
        "status": "succeeded",
        "refunded": False,
        "created": 1699990000,
        "payment_intent": {"id": "pi_1", "object": "payment_intent", "customer": "cus_1"},
        "billing_details": {
            "name": "Jenny Rosen",
            "email": "jenny@example.com",
            "address": {"line1": "1 Main St", "city": "Springfield"},
            "phone": "+15550100",
        },
        "receipt_email": "jenny@example.com",
        "payment_method_details": {"card": {"last4": "4242", "fingerprint": "Xt5E"}},
        "customer": "cus_1",
        "metadata": {"order_no": "O-1"},
        "refunds": {"object": "list", "data": [refund]},
    }
    return {
        "id": "evt_1",
        "object": "event",
        "type": "charge.refunded",
        "created": 1700000001,
        "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": charge, "previous_attributes": {"amount_refunded": 0}},
        "request": {"id": "req_1", "idempotency_key": "k"},
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("id",), "evt_1"),
        (("type",), "charge.refunded"),
        (("created",), 1700000001),
        (("livemode",), False),
        (("data", "object", "id"), "ch_1"),
        (("data", "object", "amount"), 1000),
        (("data", "object", "amount_refunded"), 500),
        (("data", "object", "currency"), "usd"),
        (("data", "object", "status"), "succeeded"),
        (("data", "object", "payment_intent"), "pi_1"),
    ],
)
def test_stripe_record_keeps_the_event_and_charge_facts(
    path: tuple[str, ...], expected: object
) -> None:
    found: Any = stripe_record(stripe_charge_event())
    for key in path:
        found = found[key]
    assert found == expected


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("id", "re_1"),
        ("amount", 500),
        ("currency", "usd"),
        ("status", "succeeded"),
        ("failure_reason", None),
        ("reason", "requested_by_customer"),
        ("payment_intent", "pi_1"),
        ("charge", "ch_1"),
        ("metadata", {"refund_no": "R-1"}),
    ],
)
def test_stripe_record_keeps_each_refund_with_only_its_refund_no_in_metadata(
    field: str, expected: object
) -> None:
    [refund] = stripe_record(stripe_charge_event())["data"]["object"]["refunds"]["data"]
    assert refund[field] == expected


@pytest.mark.parametrize(
    "personal",
    ["Jenny Rosen", "jenny@example.com", "1 Main St", "+15550100", "4242", "cus_1", "555-0100"],
)
def test_stripe_record_holds_no_personal_or_card_field(personal: str) -> None:
    assert personal not in repr(stripe_record(stripe_charge_event()))


@pytest.mark.parametrize(
    "field",
    ["billing_details", "receipt_email", "payment_method_details", "customer", "metadata"],
)
def test_stripe_record_drops_charge_fields_it_does_not_name(field: str) -> None:
    assert field not in stripe_record(stripe_charge_event())["data"]["object"]


def test_stripe_record_of_another_object_keeps_its_id_and_kind() -> None:
    event = {
        "id": "evt_2",
        "type": "customer.updated",
        "data": {"object": {"id": "cus_1", "object": "customer", "email": "jenny@example.com"}},
    }
    assert stripe_record(event)["data"] == {"object": {"id": "cus_1", "object": "customer"}}
