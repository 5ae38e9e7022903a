"""Workflow and activity message types.

Stdlib only, so the workflow sandbox can import them. One argument in, one result out: fields
can be added with defaults without breaking running workflows. Amounts are integer minor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RefundStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABNORMAL = "abnormal"
    REJECTED = "rejected"
    EXPIRED = "expired"


class GatewayStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABNORMAL = "abnormal"


class Channel(StrEnum):
    STRIPE = "stripe"
    WECHATPAY = "wechatpay"


class RefundSource(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


# A cancelled order may still be owed money (a refund failed after it was cancelled): it takes
# refunds up to what is unrefunded, like a paid one. `refunded` has nothing left to refund.
REFUNDABLE_ORDER_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.CANCELLED})


class FindingKind(StrEnum):
    """What a reconciliation finds (issue 9); each has a stable code."""

    # The gateway refunded it, our ledger still waits (processing/abnormal): its workflow is told.
    GATEWAY_SUCCEEDED = "gateway_succeeded"
    # The gateway failed it, our ledger says succeeded: the late-failure path (abnormal, ops).
    GATEWAY_FAILED = "gateway_failed"
    # A gateway refund with our refund_no and no row, or amounts/payments that differ: reported.
    MISMATCH = "mismatch"
    # Not terminal, and its workflow was closed (terminated, reset, failed): a fresh run took it.
    REPAIRED = "repaired"
    # Not terminal for longer than the age set for its status: reported.
    OVERDUE = "overdue"
    # The ledger has it failed, the gateway succeeded (or is still paying it out): money went
    # or may go to the customer that the ledger does not count; a success is delivered.
    GATEWAY_SUCCEEDED_AFTER_FAILURE = "gateway_succeeded_after_failure"
    # Asking the gateway about this refund raised (detail: error class and code): the run went
    # on with the next refund; the next run asks again.
    LOOKUP_FAILED = "lookup_failed"
    # Ops already decided this refund after a late failure; the gateway still disagrees with
    # the ledger: reported, never delivered (ops' decision stands).
    ADJUDICATED = "adjudicated"


class ResolveOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# Statuses whose reservation is released: they no longer count against the paid amount.
RELEASED_STATUSES = frozenset({RefundStatus.REJECTED, RefundStatus.EXPIRED, RefundStatus.FAILED})
TERMINAL_STATUSES = RELEASED_STATUSES | {RefundStatus.SUCCEEDED}


@dataclass(frozen=True)
class RefundItem:
    sku: str
    quantity: int


@dataclass(frozen=True)
class RefundTimings:
    """Durations (seconds) the workflow waits; filled from settings by whoever starts it, so the
    workflow stays deterministic and tests can make them short."""

    approval_timeout: float = 72 * 3600
    poll_interval: float = 30
    poll_max_interval: float = 1800
    outcome_deadline: float = 3 * 86400
    gateway_call_timeout: float = 30
    gateway_retry_initial: float = 1
    gateway_retry_max: float = 60
    # An abnormal refund keeps asking the gateway at this slower pace until ops resolve it.
    abnormal_poll_interval: float = 3600


@dataclass(frozen=True)
class RefundRequest:
    """What a caller asks for; the workflow input and the `apply` update payload."""

    refund_no: str
    order_no: str
    amount: int
    reason: str
    requested_by: str
    source: RefundSource
    items: list[RefundItem] = field(default_factory=list)
    timings: RefundTimings = field(default_factory=RefundTimings)
    # The order currency's REFUNDS_AUTO_APPROVE_LIMIT: admin refunds within what it leaves of
    # the policy's sums skip approval (`refunds.domain.approval_policy`).
    auto_approve_limit: int = 0
    # Set only when a finished refund is reopened by a late gateway failure (SPEC §4).
    reopened_by: GatewayNotification | None = None
    # Set when reconciliation found the refund's workflow closed under it (issue 9): a fresh run
    # claims the refund from the ledger and carries it on from its current status.
    repair: bool = False


@dataclass(frozen=True)
class ApplyResult:
    refund_no: str
    order_no: str
    amount: int
    currency: str
    channel: Channel
    payment_ref: str
    status: RefundStatus
    total_amount: int
    auto_approved: bool = False
    # False when another workflow run already owns this refund_no: this run must stop.
    owned: bool = True


@dataclass(frozen=True)
class RefundFacts:
    """What apply established about a refund and never changes (issue 11: the successor of
    `ApplyResult`). Every later step of the workflow takes these facts as they are."""

    refund_no: str
    order_no: str
    amount: int
    currency: str
    channel: Channel
    payment_ref: str
    # The order's paid amount: WeChat Pay's refund call needs the payment's total.
    total_amount: int
    reason: str
    requested_by: str
    source: RefundSource
    items: list[RefundItem] = field(default_factory=list)
    created_at: str = ""  # ISO 8601, as the ledger row has it


@dataclass(frozen=True)
class RefundRow:
    """The refund's changing fields as a step committed them: what an update answers with, so
    the API does not read back what the workflow has just written."""

    status: RefundStatus
    approved_by: str | None = None
    gateway_refund_id: str | None = None
    needs_manual_return: bool = False
    updated_at: str = ""  # ISO 8601
    completed_at: str | None = None


@dataclass(frozen=True)
class Applied:
    """The answer of the apply step: the facts, the row, and what the run should do next."""

    facts: RefundFacts
    row: RefundRow
    auto_approved: bool = False
    # False when another workflow run already owns this refund_no: this run must stop.
    owned: bool = True


@dataclass(frozen=True)
class Step:
    """One step of a refund: a timeline entry and, when `to_status` is set, the status move it
    records, written in one transaction. `key` makes an entry without a move happen once."""

    facts: RefundFacts
    actor: str
    event: str
    detail: dict[str, str | int | None] = field(default_factory=dict)
    to_status: RefundStatus | None = None
    key: str = ""
    # Set on an ops decision that releases the amount (`resolved_failed`): the step re-reads the
    # gateway status it holds under the refund's row lock and refuses while the gateway may
    # still pay, so an answer heard between the decision and its commit is never contradicted.
    confirm_gateway_not_paying: bool = False
    # Set on a move the gateway's word causes: the statuses the ledger must have heard (under
    # the row lock) for it. A signal is only a hint; the words that count are those a verified
    # path recorded (a webhook the API verified, the gateway activities' own calls).
    requires_heard: list[GatewayStatus] = field(default_factory=list)


@dataclass(frozen=True)
class RefundView:
    """What the refund workflow answers (updates, query, result). `facts`/`row` are None from
    a run of the first workflow type (`RefundWorkflow` v1), which answered with `RefundState`:
    the API then reads the row itself."""

    refund_no: str
    status: RefundStatus | None
    facts: RefundFacts | None = None
    row: RefundRow | None = None


@dataclass(frozen=True)
class Decision:
    """An approver's `approve` or `reject` message."""

    actor: str
    note: str = ""
    # The API's signature of this decision (`domain.decision_signing`): the workflow takes
    # decisions only from the API, which knows who the person is.
    signature: str = ""


@dataclass(frozen=True)
class Resolution:
    """An ops decision for an `abnormal` refund."""

    actor: str
    outcome: ResolveOutcome
    note: str = ""
    signature: str = ""  # the API's, as a Decision's


@dataclass(frozen=True)
class GatewayNotification:
    """A gateway's word on a refund, from a webhook or a poll, already verified."""

    refund_no: str
    status: GatewayStatus
    gateway_refund_id: str | None = None
    source: str = "webhook"
    event_id: str | None = None
    event_type: str | None = None
    failure_reason: str | None = None
    # What the gateway says the refund is for, when the message carries it: a refund found under
    # our refund_no is ours only if these match (a client-chosen refund_no can collide).
    amount: int | None = None
    payment_ref: str | None = None
    # Stripe's refund events carry it (upper-cased here); WeChat Pay's refund notification does
    # not, so None is "not said", never a mismatch.
    currency: str | None = None


@dataclass(frozen=True)
class GatewayRefundInput:
    refund_no: str
    order_no: str
    channel: Channel
    payment_ref: str
    amount: int
    currency: str
    total_amount: int
    reason: str = ""


@dataclass(frozen=True)
class GatewayRefund:
    """A gateway's refund object, reduced to what the pipeline needs."""

    refund_no: str
    gateway_refund_id: str
    status: GatewayStatus
    amount: int
    currency: str
    failure_reason: str | None = None
    # The payment the gateway refunds (Stripe payment_intent, WeChat transaction_id), if known.
    payment_ref: str | None = None


@dataclass(frozen=True)
class GatewayRefundPage:
    """One page of a gateway's refunds (reconciliation). `refund_no` is "" for refunds that do
    not carry one of ours; `next_cursor` None on the last page."""

    refunds: list[GatewayRefund] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True)
class GatewayLookup:
    refund_no: str
    channel: Channel
    payment_ref: str


@dataclass(frozen=True)
class PaymentQuery:
    """What `PaymentCheck` asks a gateway: the payment an order is being registered on, and
    how long to try (from the settings of whoever starts it, so the workflow stays pure)."""

    channel: Channel
    payment_ref: str
    call_timeout: float = 10
    retry_initial: float = 1
    retry_max: float = 5
    attempts: int = 3


@dataclass(frozen=True)
class GatewayPayment:
    """A payment as its gateway has it (Stripe PaymentIntent, WeChat Pay transaction)."""

    payment_ref: str
    # Paid in full and final: Stripe `succeeded`, WeChat Pay `trade_state` SUCCESS.
    succeeded: bool
    # The gateway's own word for it, for the message of a refusal.
    gateway_status: str
    # What the gateway took from the payer: Stripe `amount_received`, WeChat `amount.total`.
    captured: int
    currency: str  # upper case


# What a gateway adapter is handed: the refund workflow passes its `RefundFacts` as they are;
# `GatewayRefundInput` / `GatewayLookup` are what the first workflow type's activities take.
RefundToPay = GatewayRefundInput | RefundFacts
RefundToFind = GatewayLookup | RefundFacts


@dataclass(frozen=True)
class TransitionInput:
    """Move a refund to `to_status`, with a timeline event; idempotent by (refund_no, to_status)."""

    refund_no: str
    to_status: RefundStatus
    actor: str
    event: str
    detail: dict[str, str | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineInput:
    """Append one timeline event; `dedupe_key` (derived from workflow history) makes it once."""

    refund_no: str
    actor: str
    event: str
    dedupe_key: str
    detail: dict[str, str | int | None] = field(default_factory=dict)
    gateway_refund_id: str | None = None


@dataclass(frozen=True)
class RestoreInput:
    refund_no: str


@dataclass(frozen=True)
class RestoreResult:
    refund_no: str
    kind: str
    applied: bool
    detail: dict[str, str | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundState:
    """What the `state` query answers."""

    refund_no: str
    status: RefundStatus | None
    timeline: list[dict[str, str | int | None]] = field(default_factory=list)


@dataclass(frozen=True)
class ReconciliationInput:
    """The workflow input; a continued run carries its progress, so nothing is done twice.

    `day` (YYYY-MM-DD in `time_zone`) picks the window; None means the day before the run.
    """

    day: str | None = None
    time_zone: str = "UTC"
    # Set by the run itself before it continues as new.
    reconciliation_id: int | None = None
    window_start: str | None = None
    window_end: str | None = None
    phase: str = "gateway"
    cursor: str | None = None
    # Tries per activity step (REFUNDS_RECONCILIATION_STEP_ATTEMPTS): a phase whose step still
    # fails after them is given up, reported, and the next phase runs.
    step_attempts: int = 10
    failed_phases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReconciliationOpened:
    reconciliation_id: int
    window_start: str  # ISO 8601, inclusive
    window_end: str  # ISO 8601, exclusive
    # Given to the close: each is reported (`lookup_failed`, subject `phase:<name>`).
    failed_phases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReconcileStep:
    """One bounded slice of a reconciliation phase, resumable from `cursor`."""

    reconciliation_id: int
    window_start: str
    window_end: str
    phase: str
    cursor: str | None = None


@dataclass(frozen=True)
class ReconcileProgress:
    """`cursor` None: the phase is done."""

    cursor: str | None
    seen: int = 0
    findings: int = 0


@dataclass(frozen=True)
class ReconciliationSummary:
    reconciliation_id: int
    window_start: str
    window_end: str
    counts: dict[str, int] = field(default_factory=dict)
    failed_phases: list[str] = field(default_factory=list)


# ---- the shops' webhooks (issue 13) ----------------------------------------------------------


@dataclass(frozen=True)
class DeliveryTimings:
    """How an endpoint's deliveries are tried, from the settings at its workflow's start."""

    timeout: float = 10.0
    retry_initial: float = 30.0
    retry_max: float = 3600.0
    retry_for: float = 3 * 86400.0
    concurrency: int = 8
    sweep_interval: float = 60.0


@dataclass(frozen=True)
class EndpointRun:
    """The input of an endpoint's delivery workflow (and of each run it continues as)."""

    endpoint_id: int
    timings: DeliveryTimings = field(default_factory=DeliveryTimings)


@dataclass(frozen=True)
class LaneQuery:
    endpoint_id: int
    busy: list[str] = field(default_factory=list)
    limit: int = 8


@dataclass(frozen=True)
class DeliveryHead:
    delivery_id: int
    lane: str


@dataclass(frozen=True)
class LaneHeads:
    """`active` False: the endpoint was deleted; its workflow ends. Disabled: no heads."""

    active: bool
    heads: list[DeliveryHead] = field(default_factory=list)


@dataclass(frozen=True)
class DeliveryTry:
    delivery_id: int
    timeout: float = 10.0


@dataclass(frozen=True)
class DeliveryOutcome:
    """`status_code` None: nothing was sent (already settled, or the endpoint is gone)."""

    delivery_id: int
    status_code: int | None = None


@dataclass(frozen=True)
class DeliveryGaveUp:
    delivery_id: int
    error: str = ""
