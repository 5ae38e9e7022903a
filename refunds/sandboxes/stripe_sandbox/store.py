"""The sandbox's state: Stripe objects as plain dicts, persisted as one JSON file.

Everything is mutated from the server's event loop only, so no locking is needed; each change
is followed by `save()` so a restarted sandbox still knows its paid payments and refunds.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from refunds.sandboxes.persistence import CoalescedWriter

Obj = dict[str, Any]
LIVE_REFUND_STATUSES = frozenset({"pending", "requires_action", "succeeded"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


@dataclass
class SandboxState:
    payment_intents: dict[str, Obj] = field(default_factory=dict)
    charges: dict[str, Obj] = field(default_factory=dict)
    refunds: dict[str, Obj] = field(default_factory=dict)
    # Per refund id: how the sandbox will move it (outcome, due times, webhook quirks).
    plans: dict[str, Obj] = field(default_factory=dict)
    events: list[Obj] = field(default_factory=list)
    idempotency: dict[str, Obj] = field(default_factory=dict)
    create_requests: dict[str, int] = field(default_factory=dict)


class StateStore:
    """Holds the state and answers the queries the API needs (refundable amount, lists)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.state = self._load(path)
        self._writer = CoalescedWriter(self._write)

    @staticmethod
    def _load(path: Path | None) -> SandboxState:
        if path is None or not path.exists():
            return SandboxState()
        return SandboxState(**json.loads(path.read_text()))

    def save(self) -> None:
        """Persist soon: changes within a moment share one write."""
        if self.path is not None:
            self._writer.request()

    def flush(self) -> None:
        if self.path is not None:
            self._writer.flush()

    def coalesce_writes(self, on: bool) -> None:
        self._writer.coalescing = on

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a file

    def refunds_of_charge(self, charge_id: str) -> list[Obj]:
        return [r for r in self.state.refunds.values() if r["charge"] == charge_id]

    def amount_refunded(self, charge_id: str) -> int:
        """Pending refunds already hold their amount, as at Stripe; failed ones give it back."""
        return sum(
            r["amount"]
            for r in self.refunds_of_charge(charge_id)
            if r["status"] in LIVE_REFUND_STATUSES
        )

    def refunds_by_refund_no(self, refund_no: str | None) -> list[Obj]:
        refunds = list(self.state.refunds.values())
        if refund_no is None:
            return refunds
        return [r for r in refunds if r["metadata"].get("refund_no") == refund_no]

    def newest_first(self) -> list[Obj]:
        """Every refund as Stripe lists them: by `created`, newest first, later inserts first
        within one second. Sorting by `created` keeps backdated refunds where Stripe has them."""
        return sorted(
            reversed(self.state.refunds.values()),
            key=lambda r: r["created"],
            reverse=True,  # a stable sort: ties keep the newest-insert-first order
        )

    def count_create_request(self, refund_no: str) -> None:
        counts = self.state.create_requests
        counts[refund_no] = counts.get(refund_no, 0) + 1
        self.save()
