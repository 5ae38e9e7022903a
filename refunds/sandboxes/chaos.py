"""Sandbox-wide chaos: every n-th gateway API call answers 5xx or stalls past the client timeout.

Shared by both sandboxes. Only gateway API calls count (Stripe `/v1/...`, WeChat Pay `/v3/...`),
never control calls, so a harness can arm faults and read results while chaos is on. The hits
alternate through `actions` in order, so a run's mix does not depend on luck.

A "timeout" stalls AFTER the sandbox has done the work (a refund created stays created): the
client gives up with an unknown answer while the gateway did act, the case a lookup-first create
must survive. An "http_500" answers before any work, as a gateway that failed on its side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAOS_ACTIONS = ("http_500", "timeout")


@dataclass
class ChaosMode:
    every: int = 0  # 0: off
    actions: tuple[str, ...] = CHAOS_ACTIONS
    delay: float = 5.0
    path_prefix: str | None = None  # None: every gateway API path
    calls: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Turn chaos on from a control-endpoint body; raises ValueError on a bad one."""
        every = spec.get("every")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError("every must be a positive integer")
        actions = tuple(spec.get("actions") or CHAOS_ACTIONS)
        unknown = set(actions) - set(CHAOS_ACTIONS)
        if unknown:
            raise ValueError(f"actions must be among {list(CHAOS_ACTIONS)}, not {sorted(unknown)}")
        delay = float(spec.get("delay", 5.0))
        if delay < 0:
            raise ValueError("delay must be >= 0 seconds")
        self.every, self.actions, self.delay = every, actions, delay
        self.path_prefix = spec.get("path_prefix")
        self.calls, self.hits = 0, {}
        return self.snapshot()

    def off(self) -> dict[str, Any]:
        """Stop injecting; the counts stay readable."""
        self.every = 0
        return self.snapshot()

    def take(self, path: str) -> str | None:
        """Count one gateway API call; the action to inject into it, if it is an n-th one."""
        if self.every < 1 or (self.path_prefix and not path.startswith(self.path_prefix)):
            return None
        self.calls += 1
        if self.calls % self.every:
            return None
        hit = sum(self.hits.values())
        action = self.actions[hit % len(self.actions)]
        self.hits[action] = self.hits.get(action, 0) + 1
        return action

    def snapshot(self) -> dict[str, Any]:
        return {
            "on": self.every > 0,
            "every": self.every,
            "actions": list(self.actions),
            "delay": self.delay,
            "path_prefix": self.path_prefix,
            "calls": self.calls,
            "hits": dict(self.hits),
        }
