"""The bare workflow's messages (stdlib only): its shape, its input, what its steps return."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BareShape:
    """How many of each history-making command one bare workflow issues: the product's happy
    path as counted from its histories (`refunds.bench.history.shape_of`). The `apply` and
    `approve` updates are always there."""

    local_activities: int = 8
    activities: int = 1
    signals: int = 4
    timers: int = 2
    upserts: int = 3
    # Of the timers, how many the run cancels once it stops waiting (the others are left to
    # fire after the workflow has closed, which costs no event).
    cancelled_timers: int = 2


@dataclass(frozen=True)
class BareInput:
    shape: BareShape = field(default_factory=BareShape)
    # The product's waits: the approval timeout, and the gateway's answer before a poll.
    approval_timeout_seconds: float = 72 * 3600
    poll_interval_seconds: float = 30.0


@dataclass(frozen=True)
class BareStep:
    name: str


@dataclass(frozen=True)
class BareStepDone:
    name: str
    ok: bool = True


@dataclass(frozen=True)
class BareApproval:
    actor: str


@dataclass(frozen=True)
class BareSignal:
    seq: int


@dataclass(frozen=True)
class BareResult:
    status: str
    signals: int
