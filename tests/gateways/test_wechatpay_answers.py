"""One case per row of the WeChat Pay answer table, fed as `(status, {"code": ...})` through the
adapter's answer reader, plus the reason limit."""

from __future__ import annotations

from typing import Any

import pytest

from refunds.domain.errors import GatewayPermanentError, GatewayTransientError, GatewayUnknownError
from refunds.gateways.answers import AnswerKind
from refunds.gateways.wechatpay_answers import WECHATPAY_ANSWERS, WeChatAnswer, classify_wechatpay
from refunds.gateways.wechatpay_gateway import REASON_MAX_BYTES, WeChatPayGateway, fit_reason

ERRORS_BY_KIND: dict[AnswerKind, type[Exception]] = {
    AnswerKind.REFUSED: GatewayPermanentError,
    AnswerKind.TRANSIENT: GatewayTransientError,
    AnswerKind.UNKNOWN: GatewayUnknownError,
}


def assert_read_as(status: int, data: dict[str, Any], kind: AnswerKind) -> None:
    assert classify_wechatpay(status, data) == kind
    with pytest.raises(Exception) as raised:
        WeChatPayGateway._answer(status, data, "R-table")
    # Exactly this class: an unknown answer must not pass for a plain transient one, and back.
    assert type(raised.value) is ERRORS_BY_KIND[kind]


@pytest.mark.parametrize(("code", "row"), WECHATPAY_ANSWERS.items(), ids=list(WECHATPAY_ANSWERS))
def test_each_wechatpay_code_is_read_as_its_table_row(code: str, row: WeChatAnswer) -> None:
    assert_read_as(row.status, {"code": code, "message": "from the table test"}, row.kind)


@pytest.mark.parametrize(
    ("status", "data"),
    [
        (500, {"code": "SOMETHING_NEW", "message": "?"}),
        (502, {"code": "UNPARSEABLE", "message": "<html>bad gateway</html>"}),
        (400, {"code": "SOMETHING_NEW", "message": "?"}),
        (403, {}),
        (404, {"code": "UNPARSEABLE", "message": "Not Found"}),
    ],
    ids=["5xx-unknown-code", "5xx-html", "4xx-unknown-code", "no-code", "404-not-wechat"],
)
def test_answers_the_table_does_not_name_are_unknown(status: int, data: dict[str, Any]) -> None:
    assert_read_as(status, data, AnswerKind.UNKNOWN)


def test_429_without_a_known_code_is_transient() -> None:
    assert_read_as(429, {"code": "SOMETHING_NEW"}, AnswerKind.TRANSIENT)


def test_a_2xx_answer_without_a_readable_refund_is_unknown() -> None:
    with pytest.raises(GatewayUnknownError):
        WeChatPayGateway._answer(200, {"out_refund_no": "R-1", "amount": {}}, "R-1")


# --- reason --------------------------------------------------------------------------------------


def test_thirty_chinese_characters_fit_as_twenty_six() -> None:
    reason = "商" * 30  # 90 bytes of UTF-8
    fitted = fit_reason(reason)
    assert fitted == "商" * 26 and len(fitted.encode()) == 78


@pytest.mark.parametrize(
    "reason",
    ["a" * 79 + "商品", "a" * 78 + "😀", "退款原因：" + "x" * 100, "商品已售完" * 10],
)
def test_reason_is_cut_on_a_character_boundary_within_80_bytes(reason: str) -> None:
    fitted = fit_reason(reason)
    assert fitted is not None and reason.startswith(fitted)
    assert len(fitted.encode()) <= REASON_MAX_BYTES
    # The next character would not have fit: nothing is dropped that could have been sent.
    assert len(reason[: len(fitted) + 1].encode()) > REASON_MAX_BYTES


def test_short_reason_is_sent_whole_and_no_reason_is_none() -> None:
    assert fit_reason("商品已售完") == "商品已售完"
    assert fit_reason("a" * 80) == "a" * 80
    assert fit_reason("") is None
