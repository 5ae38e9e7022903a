"""WeChat Pay v3 answers (申请退款 / 查询单笔退款 / 查询订单) -> refused / transient / unknown.

Codes and statuses are those WeChat Pay documents for POST /v3/refund/domestic/refunds,
GET /v3/refund/domestic/refunds/{out_refund_no} and, for the payment an order is registered on,
GET /v3/pay/transactions/id/{transaction_id}. A code missing from the table, a 5xx without a
code we know, an answer we cannot read and any exception of the client are UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from refunds.gateways.answers import AnswerKind

REFUSED, TRANSIENT, UNKNOWN = AnswerKind.REFUSED, AnswerKind.TRANSIENT, AnswerKind.UNKNOWN
RATE_LIMITED = 429  # with any code: WeChat did not accept the request


@dataclass(frozen=True)
class WeChatAnswer:
    status: int  # the HTTP status WeChat Pay documents the code with
    kind: AnswerKind
    why: str


# fmt: off
WECHATPAY_ANSWERS: dict[str, WeChatAnswer] = {
    "PARAM_ERROR": WeChatAnswer(400, REFUSED,
        "malformed request (e.g. amount.total other than the paid amount): the same request "
        "is refused again and nothing was refunded"),
    "INVALID_REQUEST": WeChatAnswer(400, REFUSED,
        "well-formed but against the business rules (over the refundable amount, payment not "
        "refundable, fully refunded): WeChat says the refund application failed"),
    "RESOURCE_NOT_EXISTS": WeChatAnswer(404, REFUSED,
        "on create: no such paid transaction, nothing to refund (on lookup it means 'no refund "
        "under this out_refund_no' and the adapter answers None before this table)"),
    "ORDER_NOT_EXIST": WeChatAnswer(404, REFUSED,
        "查询订单: no such transaction; the adapter answers None (no payment) before this table"),
    "USER_ACCOUNT_ABNORMAL": WeChatAnswer(403, REFUSED,
        "the payer's account is closed or frozen: WeChat says the application failed and the "
        "merchant must refund another way"),
    "NOT_ENOUGH": WeChatAnswer(403, TRANSIENT,
        "merchant balance too low right now: WeChat says recharge and call again, so the "
        "customer's refund waits rather than fails"),
    "FREQUENCY_LIMITED": WeChatAnswer(429, TRANSIENT,
        "rate limited: WeChat says the refund was not accepted, slow down and retry"),
    "BIZERR_NEED_RETRY": WeChatAnswer(400, TRANSIENT,
        "a refund-flow error WeChat says a retry resolves (concurrent refunds of one payment); "
        "a v2 code, kept in case v3 answers carry it"),
    "SIGN_ERROR": WeChatAnswer(401, TRANSIENT,
        "our key or serial is wrong, a config error: retry until ops fix it rather than fail "
        "customers' refunds (project decision, as Stripe 401)"),
    "MCH_NOT_EXISTS": WeChatAnswer(404, TRANSIENT,
        "the configured mchid is unknown to WeChat: a config error, retried until fixed"),
    "APPID_MCHID_NOT_MATCH": WeChatAnswer(400, TRANSIENT,
        "appid and mchid not bound together: a config error, retried until fixed"),
    "NO_AUTH": WeChatAnswer(403, TRANSIENT,
        "the merchant lacks refund permission: an account matter ops can fix, like Stripe 403 "
        "PermissionError, so it waits rather than fails"),
    "SYSTEMERROR": WeChatAnswer(500, UNKNOWN,
        "查询订单 spells its system error so: a read, retried; unknown like SYSTEM_ERROR"),
    "SYSTEM_ERROR": WeChatAnswer(500, UNKNOWN,
        "系统超时: WeChat asks to retry with the same out_refund_no and parameters, i.e. it may "
        "have accepted the refund; retried behind the lookup"),
}
# fmt: on


def classify_wechatpay(status: int, data: Mapping[str, Any]) -> AnswerKind:
    """The kind of a non-2xx answer `(status, {"code": ..., "message": ...})`."""
    row = WECHATPAY_ANSWERS.get(str(data.get("code", "")))
    if row is not None:
        return row.kind
    return TRANSIENT if status == RATE_LIMITED else UNKNOWN
