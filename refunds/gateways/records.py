"""Minimized gateway records: what we keep of a verified notification in
`gateway_notifications.payload`.

A gateway's notification carries more than reconciliation and ops need: WeChat Pay names the
account the money went to, a Stripe charge carries the card, the payer's name, email and
address. The record keeps an allow-list (ids, statuses, amounts, currency, timestamps, the
event type, the failure reason), never a deny-list, so a field a gateway adds later is dropped
until someone decides to keep it. Account names are masked to the bank's name and the last four
digits; Stripe metadata is cut to our `refund_no`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The longest bank/account label kept: WeChat's are short ("招商银行信用卡"); a longer one is
# free text we did not ask for.
ACCOUNT_LABEL_LIMIT = 32
_DIGITS = re.compile(r"\d")

WECHAT_RESOURCE_FIELDS = (
    "mchid",
    "out_trade_no",
    "transaction_id",
    "out_refund_no",
    "refund_id",
    "refund_status",
    "success_time",
    "create_time",
)
WECHAT_AMOUNT_FIELDS = ("total", "refund", "payer_total", "payer_refund", "currency")
WECHAT_EVENT_FIELDS = ("id", "create_time", "event_type", "resource_type")

STRIPE_EVENT_FIELDS = ("id", "type", "created", "livemode", "api_version")
STRIPE_REFUND_FIELDS = (
    "id",
    "object",
    "amount",
    "currency",
    "status",
    "failure_reason",
    "reason",
    "created",
)
STRIPE_CHARGE_FIELDS = (
    "id",
    "object",
    "amount",
    "amount_refunded",
    "currency",
    "status",
    "created",
    "refunded",
)
# Expandable fields: the id is kept, an expanded object (a customer, a card) is not.
STRIPE_REFERENCES = ("payment_intent", "charge")


def mask_account(label: object) -> str | None:
    """`招商银行信用卡6214...0403` -> `招商银行信用卡0403`: the bank's name (the label without its
    digits, bounded) and the last four digits, never the whole account number."""
    if not isinstance(label, str):
        return None
    digits = "".join(_DIGITS.findall(label))
    name = _DIGITS.sub("", label).replace("*", "").strip()[:ACCOUNT_LABEL_LIMIT]
    return name + digits[-4:]


def wechatpay_record(envelope: Mapping[str, Any], resource: Mapping[str, Any]) -> dict[str, Any]:
    """The minimized record of a WeChat Pay v3 notification: the envelope's id, time and event
    type, and of the decrypted resource its ids, status, times and amounts; the account the
    refund went to is masked."""
    record = _pick(resource, WECHAT_RESOURCE_FIELDS)
    amount = resource.get("amount")
    if isinstance(amount, Mapping):
        record["amount"] = _pick(amount, WECHAT_AMOUNT_FIELDS)
    if "user_received_account" in resource:
        record["user_received_account"] = mask_account(resource["user_received_account"])
    record["event"] = _pick(envelope, WECHAT_EVENT_FIELDS)
    return record


def stripe_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """The minimized record of a Stripe event: its id, type and time, and of its object only a
    refund's or a charge's ids, amounts, status, failure reason and `metadata.refund_no`; any
    other object is kept as its id and kind."""
    record = _pick(event, STRIPE_EVENT_FIELDS)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if isinstance(obj, Mapping):
        record["data"] = {"object": _stripe_object(obj)}
    return record


def _stripe_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    kind = obj.get("object")
    if kind == "refund":
        return _stripe_refund(obj)
    if kind == "charge":
        charge = _pick(obj, STRIPE_CHARGE_FIELDS) | _references(obj)
        refunds = obj.get("refunds")
        listed = refunds.get("data") if isinstance(refunds, Mapping) else None
        if isinstance(listed, list):
            charge["refunds"] = {
                "data": [_stripe_refund(one) for one in listed if isinstance(one, Mapping)]
            }
        return charge
    return _pick(obj, ("id", "object"))


def _stripe_refund(refund: Mapping[str, Any]) -> dict[str, Any]:
    record = _pick(refund, STRIPE_REFUND_FIELDS) | _references(refund)
    metadata = refund.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("refund_no"), str):
        record["metadata"] = {"refund_no": metadata["refund_no"]}
    return record


def _references(obj: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in STRIPE_REFERENCES:
        value = obj.get(name)
        if isinstance(value, Mapping):
            value = value.get("id")
        if isinstance(value, str) or (value is None and name in obj):
            found[name] = value
    return found


def _pick(source: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields that are there, as scalars only: a nested object in a kept field's
    place is something we did not expect and is not kept."""
    return {
        name: source[name]
        for name in names
        if name in source and (source[name] is None or isinstance(source[name], str | int | bool))
    }
