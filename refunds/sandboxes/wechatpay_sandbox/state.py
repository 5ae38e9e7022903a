"""The sandbox's books: paid transactions, refunds, create-call counts, sent notifications and
injected faults, with the refund rules WeChat Pay enforces. Persisted as JSON when configured."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from refunds.sandboxes.persistence import CoalescedWriter

CHINA_TZ = timezone(timedelta(hours=8))
TERMINAL = frozenset({"SUCCESS", "CLOSED", "ABNORMAL"})
# "error": answer `status` with WeChat's `{"code", "message"}` before any work (e.g. 400
# PARAM_ERROR, 401 SIGN_ERROR after a key change, 403 NO_AUTH).
# What a finished refund can still become (the sandbox's settle control): ABNORMAL is the only
# state the merchant can still act on; PROCESSING ends as the refund's faults say.
SETTLEMENTS = {
    "ABNORMAL": frozenset({"SUCCESS", "CLOSED"}),
    "PROCESSING": frozenset({"SUCCESS", "ABNORMAL", "CLOSED"}),
}
REQUEST_ACTIONS = frozenset({"http_500", "rate_limit", "timeout", "bad_signature", "error"})
REFUND_ACTIONS = frozenset(
    {
        "abnormal",
        "closed",
        "permanent_error",
        "no_notify",
        "duplicate_notify",
        "notify_before_response",
        "out_of_order",
    }
)


def now_rfc3339() -> str:
    """WeChat's time format: RFC 3339 in China time, e.g. 2018-06-08T10:34:56+08:00."""
    return datetime.now(CHINA_TZ).isoformat(timespec="seconds")


def _digits(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice("0123456789") for _ in range(length - len(prefix)))


class ApiError(Exception):
    """A v3 error answer: HTTP status and WeChat's `{"code", "message"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Transaction:
    transaction_id: str
    out_trade_no: str
    amount: int
    currency: str
    success_time: str
    # SUCCESS for a paid one; NOTPAY, CLOSED, PAYERROR... for a test of a payment not paid.
    trade_state: str = "SUCCESS"

    def to_wire(self, mchid: str, appid: str) -> dict[str, Any]:
        """The transaction object of 查询订单 (GET /v3/pay/transactions/id/{transaction_id})."""
        paid = self.trade_state == "SUCCESS"
        wire: dict[str, Any] = {
            "appid": appid,
            "mchid": mchid,
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "trade_type": "NATIVE",
            "trade_state": self.trade_state,
            "trade_state_desc": "支付成功" if paid else "未支付",
            "bank_type": "OTHERS",
            "attach": "",
            "payer": {"openid": "oSandboxPayer0000000000000000"},
            "amount": {"total": self.amount, "currency": self.currency},
        }
        if paid:
            wire["success_time"] = self.success_time
            wire["amount"] |= {"payer_total": self.amount, "payer_currency": self.currency}
        return wire


@dataclass
class Refund:
    refund_id: str
    out_refund_no: str
    transaction_id: str
    out_trade_no: str
    refund: int
    total: int
    currency: str
    reason: str
    notify_url: str
    status: str
    create_time: str
    success_time: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The refund object of the create and query APIs."""
        wire: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": self.create_time,
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "from": [],
                "payer_total": self.total,
                "payer_refund": self.refund,
                "settlement_refund": self.refund,
                "settlement_total": self.total,
                "discount_refund": 0,
                "currency": self.currency,
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if self.success_time:
            wire["success_time"] = self.success_time
        return wire

    def notification_resource(self, mchid: str, status: str | None = None) -> dict[str, Any]:
        """The plaintext of a refund notification's encrypted resource."""
        status = status or self.status
        resource: dict[str, Any] = {
            "mchid": mchid,
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "out_refund_no": self.out_refund_no,
            "refund_id": self.refund_id,
            "refund_status": status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
            },
        }
        if status == "SUCCESS" and self.success_time:
            resource["success_time"] = self.success_time
        return resource


@dataclass
class RequestFault:
    action: str
    method: str | None = None
    path_prefix: str = "/v3/"
    times: int = 1
    delay: float = 5.0
    status: int = 400
    code: str = "PARAM_ERROR"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and path.startswith(
            self.path_prefix
        )


@dataclass
class SandboxState:
    transactions: dict[str, Transaction] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    create_requests: dict[str, int] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    request_faults: list[RequestFault] = field(default_factory=list)
    refund_faults: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    state_file: Path | None = None
    _writer: CoalescedWriter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._writer = CoalescedWriter(self._write)

    # --- persistence -------------------------------------------------------------------------

    @classmethod
    def load(cls, state_file: Path | None) -> SandboxState:
        state = cls(state_file=state_file)
        if state_file is None or not state_file.exists():
            return state
        raw = json.loads(state_file.read_text())
        state.transactions = {k: Transaction(**v) for k, v in raw["transactions"].items()}
        state.refunds = {k: Refund(**v) for k, v in raw["refunds"].items()}
        state.create_requests = dict(raw.get("create_requests", {}))
        state.notifications = list(raw.get("notifications", []))
        return state

    def save(self) -> None:
        """Persist soon: changes within a moment share one write."""
        if self.state_file is not None:
            self._writer.request()

    def flush(self) -> None:
        if self.state_file is not None:
            self._writer.flush()

    def coalesce_writes(self, on: bool) -> None:
        self._writer.coalescing = on

    def _write(self) -> None:
        """Write atomically, so a crash mid-write never leaves a half file for the next start."""
        if self.state_file is None:
            return
        raw = {
            "transactions": {k: asdict(v) for k, v in self.transactions.items()},
            "refunds": {k: asdict(v) for k, v in self.refunds.items()},
            "create_requests": self.create_requests,
            "notifications": self.notifications,
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, ensure_ascii=False, indent=1))
        os.replace(tmp, self.state_file)

    # --- transactions and refunds ------------------------------------------------------------

    def add_transaction(
        self, amount: int, currency: str, out_trade_no: str | None, trade_state: str = "SUCCESS"
    ) -> Transaction:
        txn = Transaction(
            transaction_id=_digits("4200", 28),
            out_trade_no=out_trade_no or uuid.uuid4().hex,
            amount=amount,
            currency=currency,
            success_time=now_rfc3339(),
            trade_state=trade_state,
        )
        self.transactions[txn.transaction_id] = txn
        self.save()
        return txn

    def find_transaction(self, transaction_id: str | None, out_trade_no: str | None) -> Transaction:
        if transaction_id:
            txn = self.transactions.get(transaction_id)
        else:
            txn = next(
                (t for t in self.transactions.values() if t.out_trade_no == out_trade_no), None
            )
        if txn is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在 (transaction not found)")
        return txn

    def refunded(self, transaction_id: str) -> int:
        """What counts against the paid amount: every refund of the payment that is not CLOSED."""
        return sum(
            r.refund
            for r in self.refunds.values()
            if r.transaction_id == transaction_id and r.status != "CLOSED"
        )

    def create_refund(self, body: dict[str, Any]) -> tuple[Refund, bool]:
        """Apply WeChat's create rules; returns the refund and whether it is new."""
        out_refund_no, amount = _require_refund_fields(body)
        self.create_requests[out_refund_no] = self.create_requests.get(out_refund_no, 0) + 1
        self.save()
        self._raise_injected_permanent_error(out_refund_no)
        txn = self.find_transaction(body.get("transaction_id"), body.get("out_trade_no"))
        existing = self.refunds.get(out_refund_no)
        if existing is not None:
            # out_refund_no is WeChat's idempotency key: same request, same refund, no new money.
            if existing.transaction_id != txn.transaction_id or existing.refund != amount["refund"]:
                raise ApiError(400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致")
            return existing, False
        if txn.trade_state != "SUCCESS":
            raise ApiError(400, "INVALID_REQUEST", "订单未支付，不能退款 (transaction not paid)")
        _check_amounts(txn, amount, self.refunded(txn.transaction_id))
        refund = Refund(
            refund_id=_digits("50", 29),
            out_refund_no=out_refund_no,
            transaction_id=txn.transaction_id,
            out_trade_no=txn.out_trade_no,
            refund=amount["refund"],
            total=amount["total"],
            currency=txn.currency,
            reason=str(body.get("reason") or ""),
            notify_url=str(body.get("notify_url") or ""),
            status="PROCESSING",
            create_time=now_rfc3339(),
        )
        self.refunds[out_refund_no] = refund
        self.save()
        return refund, True

    def finish(self, refund: Refund) -> None:
        """Move a PROCESSING refund to the outcome its faults ask for (SUCCESS by default)."""
        faults = self.refund_faults.get(refund.out_refund_no, {})
        if "abnormal" in faults:
            refund.status = "ABNORMAL"
        elif "closed" in faults:
            refund.status = "CLOSED"
        else:
            refund.status = "SUCCESS"
            refund.success_time = now_rfc3339()
        self.save()

    def settle(self, out_refund_no: str, status: str) -> Refund:
        """Move a finished refund as the merchant platform can: an ABNORMAL refund (the card
        account was closed) is paid by an offline settlement or re-sent (SUCCESS) or closed
        (CLOSED). SUCCESS and CLOSED are final at WeChat Pay: nothing moves them."""
        refund = self.refunds.get(out_refund_no)
        if refund is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        allowed = SETTLEMENTS.get(refund.status, frozenset())
        if status not in allowed:
            raise ApiError(400, "INVALID_REQUEST", f"退款单状态 {refund.status} 不能变为 {status}")
        refund.status = status
        if status == "SUCCESS":
            refund.success_time = now_rfc3339()
        self.save()
        return refund

    def _raise_injected_permanent_error(self, out_refund_no: str) -> None:
        fault = self.refund_faults.get(out_refund_no, {}).get("permanent_error")
        if fault is None:
            return
        if fault.get("code") == "INVALID_REQUEST":
            raise ApiError(400, "INVALID_REQUEST", "该笔订单不支持退款 (payment not refundable)")
        raise ApiError(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")

    # --- faults --------------------------------------------------------------------------------

    def add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        action = str(body.get("action", ""))
        if body.get("refund_no"):
            if action not in REFUND_ACTIONS:
                raise ApiError(400, "PARAM_ERROR", f"unknown refund fault {action!r}")
            params = {k: v for k, v in body.items() if k not in ("refund_no", "action")}
            self.refund_faults.setdefault(str(body["refund_no"]), {})[action] = params
            return {"refund_no": body["refund_no"], "action": action, **params}
        if action not in REQUEST_ACTIONS:
            raise ApiError(400, "PARAM_ERROR", f"unknown request fault {action!r}")
        fault = RequestFault(
            action=action,
            method=body.get("method"),
            path_prefix=str(body.get("path_prefix", "/v3/")),
            times=int(body.get("times", 1)),
            delay=float(body.get("delay", 5.0)),
            status=int(body.get("status", 400)),
            code=str(body.get("code", "PARAM_ERROR")),
        )
        self.request_faults.append(fault)
        return asdict(fault)

    def take_request_fault(self, method: str, path: str) -> RequestFault | None:
        """The first armed fault matching this request, consuming one of its `times`."""
        for fault in self.request_faults:
            if fault.times > 0 and fault.matches(method, path):
                fault.times -= 1
                return fault
        return None

    def has_refund_fault(self, out_refund_no: str, action: str) -> bool:
        return action in self.refund_faults.get(out_refund_no, {})


def _require_refund_fields(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    out_refund_no = body.get("out_refund_no")
    amount = body.get("amount")
    if not isinstance(out_refund_no, str) or not out_refund_no or len(out_refund_no) > 64:
        raise ApiError(400, "PARAM_ERROR", "out_refund_no 字段缺失或格式错误")
    if not (body.get("transaction_id") or body.get("out_trade_no")):
        raise ApiError(400, "PARAM_ERROR", "transaction_id 与 out_trade_no 必须二选一")
    if not isinstance(amount, dict):
        raise ApiError(400, "PARAM_ERROR", "amount 字段缺失")
    for name in ("refund", "total"):
        # Amounts are integer fen; WeChat rejects floats and strings.
        value = amount.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ApiError(400, "PARAM_ERROR", f"amount.{name} 必须为正整数（分）")
    return out_refund_no, amount


def _check_amounts(txn: Transaction, amount: dict[str, Any], refunded: int) -> None:
    if amount["total"] != txn.amount:
        raise ApiError(400, "PARAM_ERROR", "订单金额与实际支付金额不一致 (total != paid)")
    if str(amount.get("currency", txn.currency)) != txn.currency:
        raise ApiError(400, "PARAM_ERROR", "currency 与订单币种不一致")
    if amount["refund"] > txn.amount - refunded:
        raise ApiError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额 (exceeds refundable)")
