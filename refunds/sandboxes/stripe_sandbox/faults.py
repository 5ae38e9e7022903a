"""Fault injection: per request (5xx, 429, slow answers) or per refund (by metadata.refund_no)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from refunds.sandboxes.stripe_sandbox.store import new_id

REQUEST_ACTIONS = frozenset({"http_500", "rate_limit", "timeout"})
OUTCOME_ACTIONS = frozenset({"permanent_error", "fail", "fail_after_success", "pending_forever"})
WEBHOOK_ACTIONS = frozenset({"no_webhook", "duplicate_webhook", "out_of_order_webhooks"})
ALL_ACTIONS = REQUEST_ACTIONS | OUTCOME_ACTIONS | WEBHOOK_ACTIONS


@dataclass
class Fault:
    """`times` None means until cleared; request faults default to the next one request."""

    id: str
    action: str
    method: str | None = None
    path_prefix: str | None = None
    refund_no: str | None = None
    times: int | None = None
    delay: float = 0.0
    after: float = 1.0
    failure_reason: str = "expired_or_canceled_card"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def matches_request(self, method: str, path: str, refund_no: str | None) -> bool:
        if self.action not in REQUEST_ACTIONS:
            return False
        if self.refund_no is not None:
            # A refund-scoped request fault hits only creates carrying that refund_no.
            return method == "POST" and path == "/v1/refunds" and refund_no == self.refund_no
        if self.method and self.method.upper() != method:
            return False
        return path.startswith(self.path_prefix or "/v1/")


def fault_from_json(spec: dict[str, Any]) -> Fault:
    """Validate a control-endpoint body; raises ValueError with a readable message."""
    action = spec.get("action")
    if action not in ALL_ACTIONS:
        raise ValueError(f"action must be one of {sorted(ALL_ACTIONS)}")
    if action not in REQUEST_ACTIONS and not spec.get("refund_no"):
        raise ValueError(f"{action} needs a refund_no")
    times = spec.get("times", 1 if action in REQUEST_ACTIONS else None)
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ValueError("times must be a positive integer")
    return Fault(
        id=new_id("flt"),
        action=action,
        method=spec.get("method"),
        path_prefix=spec.get("path_prefix"),
        refund_no=spec.get("refund_no"),
        times=times,
        # A "timeout" without a delay still has to outlast a client's timeout to mean anything.
        delay=float(spec.get("delay", 30.0 if action == "timeout" else 0.0)),
        after=float(spec.get("after", 1.0)),
        failure_reason=str(spec.get("failure_reason", "expired_or_canceled_card")),
    )


class FaultRegistry:
    """Active faults, in the order they were added; the first match wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def all(self) -> list[Fault]:
        return list(self._faults)

    def take_request_fault(self, method: str, path: str, refund_no: str | None) -> Fault | None:
        """Consume one use of the first request fault matching this request."""
        for fault in self._faults:
            if fault.matches_request(method, path, refund_no):
                self._use(fault)
                return fault
        return None

    def for_refund(self, refund_no: str | None) -> list[Fault]:
        if refund_no is None:
            return []
        return [
            f for f in self._faults if f.refund_no == refund_no and f.action not in REQUEST_ACTIONS
        ]

    def _use(self, fault: Fault) -> None:
        if fault.times is None:
            return
        fault.times -= 1
        if fault.times <= 0:
            self._faults.remove(fault)
