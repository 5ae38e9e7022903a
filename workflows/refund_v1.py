"""RefundWorkflow, the first refund workflow type, kept as shipped until its runs drain.

New refunds run `workflows/refund.py` (type `Refund`, issue 11); this code finishes the runs
started before it, and must not change except as a patch would (design §4, "Two workflow
types"). Delete it, its activities and `domain/activity_names.py` once none is open.

Deterministic: no I/O, clock or randomness outside the SDK. Every side effect is an activity,
idempotent by refund_no, so a replay or a retry after a crash does nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from refunds.domain import activity_names as names
    from refunds.domain.errors import NON_RETRYABLE_TYPES
    from refunds.domain.idempotency import hidden_from, request_fingerprint
    from refunds.domain.matching import gateway_mismatch
    from refunds.domain.messages import (
        ApplyResult,
        Decision,
        GatewayLookup,
        GatewayNotification,
        GatewayRefund,
        GatewayRefundInput,
        GatewayStatus,
        RefundRequest,
        RefundState,
        RefundStatus,
        Resolution,
        ResolveOutcome,
        RestoreInput,
        RestoreResult,
        TimelineInput,
        TransitionInput,
    )
    from refunds.domain.transitions import gateway_moves_forward, is_late_failure

REFUND_NO = SearchAttributeKey.for_keyword("RefundNo")
ORDER_NO = SearchAttributeKey.for_keyword("OrderNo")
REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
PAYMENT_CHANNEL = SearchAttributeKey.for_keyword("PaymentChannel")
REFUND_AMOUNT = SearchAttributeKey.for_int("RefundAmount")

LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
LEDGER_TIMEOUT = timedelta(seconds=15)
WAITING_FOR: dict[RefundStatus | None, str] = {
    RefundStatus.PENDING_APPROVAL: "an approver: `POST /v1/refunds/{refund_no}/approve` or reject",
    RefundStatus.PROCESSING: "the gateway's answer (notification, else polling)",
    RefundStatus.ABNORMAL: "ops: `POST /v1/refunds/{refund_no}/resolve`",
}
TERMINAL_GATEWAY = (GatewayStatus.SUCCEEDED, GatewayStatus.FAILED, GatewayStatus.ABNORMAL)
FINAL_GATEWAY = (GatewayStatus.SUCCEEDED, GatewayStatus.FAILED)
# A poll is one question: a few tries, then "no news" until the next one.
POLL_ATTEMPTS = 3
# Patches (issue 8): each keeps histories recorded before it replaying as they ran.
POLL_ANSWERS_RECORDED = "poll-answers-recorded"
ABNORMAL_KEEPS_LISTENING = "abnormal-keeps-listening"


def _domain_error(err: BaseException) -> ApplicationError | None:
    """The business error behind an activity failure (local activities nest it differently)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_TYPES:
            return cause
        cause = getattr(cause, "cause", None) or cause.__cause__
    return None


def workflow_id(refund_no: str) -> str:
    """One workflow per refund (SPEC §4): the id every start, signal and update uses."""
    return f"refund-{refund_no}"


@workflow.defn(name="RefundWorkflow")
class RefundWorkflowV1:
    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        self._request = request
        self._timings = request.timings
        self._applied: ApplyResult | None = None
        self._apply_error: ApplicationError | None = None
        self._status: RefundStatus | None = None
        self._decision: tuple[str, Decision] | None = None
        self._decision_recorded = False
        self._gateway: GatewayNotification | None = None
        self._late_failure: GatewayNotification | None = None
        # Why the refund the gateway shows under our refund_no is not ours; never a success.
        self._mismatch: str | None = None
        self._resolution: Resolution | None = None
        self._timeline: list[dict[str, Any]] = []
        self._records = 0

    # ---- the story of a refund -------------------------------------------------------------

    @workflow.run
    async def run(self, request: RefundRequest) -> RefundState:
        if request.reopened_by is not None:
            await self._reopen(request.reopened_by)
        elif request.repair:
            await self._repair()
        elif await self._apply() and await self._await_decision():
            await self._pay_back()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _pay_back(self) -> None:
        """Approved: the gateway refund, its outcome, ops if needed, restores, finalize."""
        await self._refund_at_gateway()
        await self._settle()

    async def _settle(self) -> None:
        if self._status == RefundStatus.PROCESSING:
            await self._await_outcome()
        if self._status == RefundStatus.ABNORMAL:
            await self._await_resolution(listen=True)
        if self._gateway_succeeded():
            await self._restore()
            await self._finalize()
        if self._late_failure is not None:
            await self._reopen(self._late_failure)

    async def _repair(self) -> None:
        """Its workflow was closed under a refund that is not finished (terminated, reset or
        failed from the UI): claim it from the ledger and carry it on from where it stands. A
        refund in processing asks the gateway first (lookup-first create): never paid twice."""
        claimed = await workflow.execute_local_activity(
            names.CLAIM_REFUND,
            self._request,
            result_type=ApplyResult,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        self._applied = claimed
        if not claimed.owned:
            return  # finished meanwhile, or another run holds it: nothing to carry on
        self._status = claimed.status
        self._note("reconciliation", "repaired", {"status": claimed.status.value})
        self._publish(initial=True)
        if claimed.status == RefundStatus.PENDING_APPROVAL:
            if await self._await_decision():
                await self._pay_back()
        elif claimed.status == RefundStatus.PROCESSING:
            await self._pay_back()
        elif claimed.status == RefundStatus.ABNORMAL:
            await self._settle()

    async def _apply(self) -> bool:
        """Validate and reserve; an invalid request ends the run with nothing left behind."""
        try:
            result = await self._apply_activity()
        except (ActivityError, ApplicationError) as err:
            cause = _domain_error(err)
            if cause is None:
                raise
            self._apply_error = ApplicationError(cause.message, type=cause.type, non_retryable=True)
            return False
        self._applied = result
        if not result.owned:
            return False  # another run owns this refund_no: answer with it, do nothing else
        self._status = result.status
        self._note(
            self._request.requested_by,
            "requested",
            {"amount": result.amount, "currency": result.currency},
        )
        self._publish(initial=True)
        return result.status == RefundStatus.PENDING_APPROVAL

    async def _apply_activity(self) -> ApplyResult:
        return await workflow.execute_local_activity(
            names.APPLY_REFUND,
            self._request,
            result_type=ApplyResult,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )

    async def _await_decision(self) -> bool:
        applied = self._require_applied()
        if applied.auto_approved:
            await self._move(
                RefundStatus.PROCESSING,
                "policy",
                "auto_approved",
                {"limit_policy": "REFUNDS_AUTO_APPROVE_LIMIT"},
            )
            return True
        # A decision counts from the moment its handler takes it, not when it is recorded: the
        # timer must not expire a refund whose approval is being written.
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None,
                timeout=timedelta(seconds=self._timings.approval_timeout),
            )
        except TimeoutError:
            pass  # the timer and a decision may land in the same workflow task: look again
        if self._decision is None:
            self._decision = ("expire", Decision("system"))  # validators now refuse decisions
            await self._move(
                RefundStatus.EXPIRED,
                "system",
                "expired",
                {"after_seconds": int(self._timings.approval_timeout)},
            )
            return False
        await workflow.wait_condition(lambda: self._decision_recorded)
        return self._status == RefundStatus.PROCESSING

    async def _refund_at_gateway(self) -> None:
        applied = self._require_applied()
        try:
            refund = await workflow.execute_activity(
                names.CREATE_GATEWAY_REFUND,
                GatewayRefundInput(
                    refund_no=applied.refund_no,
                    order_no=applied.order_no,
                    channel=applied.channel,
                    payment_ref=applied.payment_ref,
                    amount=applied.amount,
                    currency=applied.currency,
                    total_amount=applied.total_amount,
                    reason=self._request.reason,
                ),
                start_to_close_timeout=timedelta(seconds=self._timings.gateway_call_timeout),
                schedule_to_close_timeout=timedelta(seconds=self._timings.outcome_deadline),
                retry_policy=self._gateway_retry(),
                result_type=GatewayRefund,
            )
        except ActivityError as err:
            await self._gateway_call_failed(err)
            return
        await self._record(
            "gateway",
            "gateway_submitted",
            {
                "gateway_refund_id": refund.gateway_refund_id,
                "gateway_status": refund.status.value,
            },
            gateway_refund_id=refund.gateway_refund_id,
        )
        self._observe(self._as_notification(refund, "create"))

    async def _gateway_call_failed(self, err: ActivityError) -> None:
        cause = _domain_error(err)
        if cause is not None:
            await self._move(
                RefundStatus.FAILED,
                "gateway",
                "gateway_refused",
                {"error": cause.type, "message": cause.message},
            )
        else:
            await self._move(
                RefundStatus.ABNORMAL,
                "system",
                "gateway_unreachable",
                {"message": str(err.cause or err)},
            )

    async def _await_outcome(self) -> None:
        """Wait for a notification; poll with backoff when none comes; give up to ops."""
        deadline = workflow.now() + timedelta(seconds=self._timings.outcome_deadline)
        interval = self._timings.poll_interval
        while not self._gateway_settled():
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                await self._move(
                    RefundStatus.ABNORMAL,
                    "system",
                    "outcome_deadline_passed",
                    {"deadline_seconds": int(self._timings.outcome_deadline)},
                )
                return
            try:
                await workflow.wait_condition(
                    self._gateway_settled, timeout=timedelta(seconds=min(interval, remaining))
                )
            except TimeoutError:
                await self._poll()
                interval = min(interval * 2, self._timings.poll_max_interval)
        await self._act_on_gateway()

    async def _poll(self) -> None:
        """Ask the gateway once. A failed lookup, whatever the error, is no news: the deadline
        (or ops), never the gateway's answer, ends the wait."""
        applied = self._require_applied()
        try:
            found = await self._lookup_activity(applied)
        except ActivityError as err:
            if workflow.patched(POLL_ANSWERS_RECORDED):
                await self._record(
                    "gateway", "gateway_lookup_failed", {"error": str(err.cause or err)[:300]}
                )
            return
        if workflow.patched(POLL_ANSWERS_RECORDED):
            await self._record("gateway", "gateway_polled", self._polled_detail(found))
        if found is not None:
            self._observe(self._as_notification(found, "poll"))

    async def _lookup_activity(self, applied: ApplyResult) -> GatewayRefund | None:
        call_timeout = self._timings.gateway_call_timeout
        result: GatewayRefund | None = await workflow.execute_activity(
            names.GET_GATEWAY_REFUND,
            GatewayLookup(applied.refund_no, applied.channel, applied.payment_ref),
            start_to_close_timeout=timedelta(seconds=call_timeout),
            # Bounded, so a lookup that keeps failing cannot hold the outcome deadline back.
            schedule_to_close_timeout=timedelta(seconds=call_timeout * (POLL_ATTEMPTS + 1)),
            retry_policy=self._gateway_retry(maximum_attempts=POLL_ATTEMPTS),
            result_type=GatewayRefund,
        )
        return result

    @staticmethod
    def _polled_detail(found: GatewayRefund | None) -> dict[str, Any]:
        if found is None:
            return {"gateway_status": "not_found", "via": "poll"}
        return {
            "gateway_status": found.status.value,
            "gateway_refund_id": found.gateway_refund_id,
            "amount": found.amount,
            "failure_reason": found.failure_reason,
            "via": "poll",
        }

    async def _act_on_gateway(self) -> None:
        """Turn the gateway's terminal answer into the refund's status."""
        if self._status != RefundStatus.PROCESSING:
            return
        if self._mismatch is not None:
            await self._move(
                RefundStatus.ABNORMAL,
                "gateway",
                "gateway_refund_mismatch",
                {"reason": self._mismatch},
            )
            return
        if self._gateway is None:
            return
        answer = self._gateway
        detail = {
            "gateway_status": answer.status.value,
            "via": answer.source,
            "failure_reason": answer.failure_reason,
        }
        if answer.status == GatewayStatus.FAILED:
            await self._move(RefundStatus.FAILED, "gateway", "gateway_failed", detail)
        elif answer.status == GatewayStatus.ABNORMAL:
            await self._move(RefundStatus.ABNORMAL, "gateway", "gateway_abnormal", detail)
        elif answer.status == GatewayStatus.SUCCEEDED:
            await self._record("gateway", "gateway_succeeded", detail)

    async def _await_resolution(self, listen: bool = False) -> None:
        """Ops decide an abnormal refund; until they do, it keeps listening to the gateway, whose
        final answer settles it (a late failure, already the gateway's last word, does not)."""
        if listen and workflow.patched(ABNORMAL_KEEPS_LISTENING):
            await self._listen_while_abnormal()
        else:
            await workflow.wait_condition(lambda: self._resolution is not None)
        resolution = self._resolution
        if resolution is None:
            if self._gateway_final() == GatewayStatus.FAILED:
                await self._move(
                    RefundStatus.FAILED,
                    "gateway",
                    "gateway_failed",
                    {"via": self._gateway.source if self._gateway else None, "after": "abnormal"},
                )
            return  # the gateway succeeded: restores and finalize follow
        if resolution.outcome == ResolveOutcome.FAILED:
            await self._move(
                RefundStatus.FAILED, resolution.actor, "resolved_failed", {"note": resolution.note}
            )

    async def _listen_while_abnormal(self) -> None:
        interval = timedelta(seconds=self._timings.abnormal_poll_interval)
        while self._resolution is None and self._gateway_final() is None:
            try:
                await workflow.wait_condition(
                    lambda: self._resolution is not None or self._gateway_final() is not None,
                    timeout=interval,
                )
            except TimeoutError:
                await self._poll()

    async def _restore(self) -> None:
        entry = RestoreInput(self._require_applied().refund_no)
        for step in (names.RESTORE_POINTS, names.RESTORE_INVENTORY, names.RELEASE_COUPON):
            await workflow.execute_local_activity(
                step, entry, start_to_close_timeout=LEDGER_TIMEOUT, retry_policy=LEDGER_RETRY
            )

    async def _finalize(self) -> None:
        if self._resolution is not None:
            await self._move(
                RefundStatus.SUCCEEDED,
                self._resolution.actor,
                "resolved_succeeded",
                {"note": self._resolution.note},
            )
        else:
            await self._move(RefundStatus.SUCCEEDED, "system", "succeeded", {})

    async def _reopen(self, failure: GatewayNotification) -> None:
        """A succeeded refund reported failed later: abnormal, with the reason, for ops."""
        if self._applied is None:  # a new run: the refund's facts come from the ledger
            self._applied = await self._apply_activity()
        self._status = RefundStatus.SUCCEEDED
        self._resolution = None
        self._publish(initial=self._request.reopened_by is not None)
        await self._move(
            RefundStatus.ABNORMAL,
            "gateway",
            "gateway_failed_after_success",
            {
                "failure_reason": failure.failure_reason,
                "event_id": failure.event_id,
                "event_type": failure.event_type,
            },
        )
        await self._await_resolution()
        if self._resolution is not None and self._resolution.outcome == ResolveOutcome.SUCCEEDED:
            await self._move(
                RefundStatus.SUCCEEDED,
                self._resolution.actor,
                "resolved_succeeded",
                {"note": self._resolution.note},
            )
        elif workflow.patched("reverse-restores-after-late-failure"):
            # No money went back after all: take back the points, stock and coupon it restored.
            taken_back = await workflow.execute_local_activity(
                names.REVERSE_RESTORES,
                RestoreInput(self._request.refund_no),
                start_to_close_timeout=LEDGER_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                result_type=RestoreResult,
            )
            self._note("system", "restores_reversed", dict(taken_back.detail))

    # ---- messages ---------------------------------------------------------------------------

    @workflow.update
    async def apply(self, caller: RefundRequest | None = None) -> ApplyResult:
        """The caller's synchronous answer to its request (Update-with-Start)."""
        await workflow.wait_condition(
            lambda: self._applied is not None or self._apply_error is not None
        )
        if self._apply_error is not None:
            raise self._apply_error
        return self._require_applied()

    @apply.validator
    def _validate_apply(self, caller: RefundRequest | None = None) -> None:
        """A second caller with the same refund_no attaches to this run (USE_EXISTING): it gets
        this refund only if it asked for the same thing, and never sees another customer's."""
        if caller is None:  # histories from before callers were checked
            return
        mine = self._request
        if hidden_from(caller, mine.requested_by):
            raise ApplicationError(f"refund {caller.refund_no} not found", type="RefundNotFound")
        if request_fingerprint(caller) != request_fingerprint(mine):
            raise ApplicationError(
                f"refund {caller.refund_no} exists with a different request", type="RefundConflict"
            )

    @workflow.update
    async def approve(self, decision: Decision) -> RefundState:
        await self._decide("approve", decision)
        return self.state()

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        self._check_decidable(decision)

    @workflow.update
    async def reject(self, decision: Decision) -> RefundState:
        await self._decide("reject", decision)
        return self.state()

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        self._check_decidable(decision, four_eyes=False)

    @workflow.update
    async def resolve(self, resolution: Resolution) -> RefundState:
        """Ops decide an abnormal refund: paid back offline (succeeded) or failed."""
        self._check_resolvable(resolution)
        self._resolution = resolution
        await workflow.wait_condition(lambda: self._status != RefundStatus.ABNORMAL)
        return self.state()

    @resolve.validator
    def _validate_resolve(self, resolution: Resolution) -> None:
        self._check_resolvable(resolution)

    @workflow.signal
    def gateway_notification(self, notification: GatewayNotification) -> None:
        self._observe(notification)

    @workflow.query
    def state(self) -> RefundState:
        return RefundState(self._request.refund_no, self._status, list(self._timeline))

    # ---- helpers ----------------------------------------------------------------------------

    def _check_decidable(self, decision: Decision, four_eyes: bool = True) -> None:
        if self._status != RefundStatus.PENDING_APPROVAL or self._decision is not None:
            raise ApplicationError(
                f"refund is {self._status}, not pending approval", type="RefundNotPendingApproval"
            )
        if four_eyes and decision.actor == self._request.requested_by:
            raise ApplicationError(
                "the approver cannot be the requester", type="ApproverIsRequester"
            )

    def _check_resolvable(self, resolution: Resolution) -> None:
        if self._status != RefundStatus.ABNORMAL or self._resolution is not None:
            raise ApplicationError(
                f"refund is {self._status}, not abnormal", type="RefundNotAbnormal"
            )
        if resolution.outcome == ResolveOutcome.FAILED and self._gateway_reported_success():
            # The money went out: releasing the amount would let it be refunded twice.
            raise ApplicationError(
                "the gateway reported this refund succeeded; it cannot be resolved failed",
                type="GatewayReportedSuccess",
            )

    async def _decide(self, verb: str, decision: Decision) -> None:
        self._check_decidable(decision, four_eyes=verb == "approve")
        self._decision = (verb, decision)
        if verb == "approve":
            await self._move(
                RefundStatus.PROCESSING, decision.actor, "approved", {"note": decision.note}
            )
        else:
            await self._move(
                RefundStatus.REJECTED, decision.actor, "rejected", {"reason": decision.note}
            )
        self._decision_recorded = True

    def _observe(self, notification: GatewayNotification) -> None:
        mismatch = self._mismatch_of(notification)
        if mismatch is not None:
            self._mismatch = self._mismatch or mismatch
            self._note(
                "gateway",
                "gateway_refund_mismatch",
                {"reason": mismatch, "via": notification.source, "event_id": notification.event_id},
            )
            return
        current = self._gateway.status if self._gateway else None
        if is_late_failure(current, notification.status):
            self._late_failure = notification
        elif gateway_moves_forward(current, notification.status):
            self._gateway = notification
            self._note(
                "gateway",
                f"gateway_{notification.status.value}",
                {"via": notification.source, "event_id": notification.event_id},
            )
        else:
            self._note(
                "gateway",
                "notification_ignored",
                {"status": notification.status.value, "event_id": notification.event_id},
            )

    def _mismatch_of(self, notification: GatewayNotification) -> str | None:
        if self._applied is None:
            return None
        return gateway_mismatch(
            self._applied.amount,
            self._applied.payment_ref,
            notification.amount,
            notification.payment_ref,
        )

    def _gateway_terminal(self) -> bool:
        return self._gateway is not None and self._gateway.status in TERMINAL_GATEWAY

    def _gateway_settled(self) -> bool:
        """Nothing more to wait for in `processing`: a terminal answer, or a refund not ours."""
        return self._gateway_terminal() or self._mismatch is not None

    def _gateway_final(self) -> GatewayStatus | None:
        """The gateway's final word on our refund (succeeded or failed), if it has given one."""
        if self._mismatch is not None or self._gateway is None:
            return None
        return self._gateway.status if self._gateway.status in FINAL_GATEWAY else None

    def _gateway_reported_success(self) -> bool:
        return self._gateway_final() == GatewayStatus.SUCCEEDED and self._late_failure is None

    def _gateway_succeeded(self) -> bool:
        if self._status == RefundStatus.PROCESSING:
            return self._gateway is not None and self._gateway.status == GatewayStatus.SUCCEEDED
        if self._status != RefundStatus.ABNORMAL:
            return False
        if self._resolution is not None:
            return self._resolution.outcome == ResolveOutcome.SUCCEEDED
        # As in processing: a success followed by a late failure first succeeds (restores
        # included), then reopens for ops, who may take the restores back.
        return self._gateway_final() == GatewayStatus.SUCCEEDED

    async def _move(self, to: RefundStatus, actor: str, event: str, detail: dict[str, Any]) -> None:
        refund_no = self._request.refund_no
        await workflow.execute_local_activity(
            names.TRANSITION,
            TransitionInput(refund_no, to, actor, event, detail),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        self._status = to
        self._note(actor, event, detail)
        workflow.upsert_search_attributes([REFUND_STATUS.value_set(to.value)])

    async def _record(
        self, actor: str, event: str, detail: dict[str, Any], gateway_refund_id: str | None = None
    ) -> None:
        # Counted by _record calls alone: signals that arrive between a failed workflow task and
        # its retry must not change the key, or the retried local activity writes twice.
        self._records += 1
        key = f"{self._request.refund_no}:{event}:{workflow.info().run_id}:{self._records}"
        await workflow.execute_local_activity(
            names.RECORD_EVENT,
            TimelineInput(self._request.refund_no, actor, event, key, detail, gateway_refund_id),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        self._note(actor, event, detail)

    def _note(self, actor: str, event: str, detail: dict[str, Any]) -> None:
        at = workflow.now().isoformat()
        self._timeline.append(
            {"at": at, "actor": actor, "event": event}
            | {k: v for k, v in detail.items() if v is not None}
        )
        # What ops read on the workflow's page in the Temporal UI; no command, replay-safe.
        status = self._status.value if self._status is not None else "applying"
        waiting = WAITING_FOR.get(self._status, "nothing: finished").format(
            refund_no=self._request.refund_no
        )
        workflow.set_current_details(
            f"**{status}** after `{event}` by {actor} at {at}\n\nWaiting for {waiting}"
        )

    def _publish(self, initial: bool) -> None:
        applied = self._require_applied()
        pairs: list[SearchAttributeUpdate[Any]] = [REFUND_STATUS.value_set(str(self._status))]
        if initial:
            pairs += [
                REFUND_NO.value_set(applied.refund_no),
                ORDER_NO.value_set(applied.order_no),
                PAYMENT_CHANNEL.value_set(applied.channel.value),
                REFUND_AMOUNT.value_set(applied.amount),
            ]
        workflow.upsert_search_attributes(pairs)

    def _gateway_retry(self, maximum_attempts: int = 0) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._timings.gateway_retry_initial),
            maximum_interval=timedelta(seconds=self._timings.gateway_retry_max),
            maximum_attempts=maximum_attempts,
            non_retryable_error_types=NON_RETRYABLE_TYPES,
        )

    def _require_applied(self) -> ApplyResult:
        if self._applied is None:
            raise ApplicationError(
                "refund was not applied", type="RefundNotApplied", non_retryable=True
            )
        return self._applied

    @staticmethod
    def _as_notification(refund: GatewayRefund, source: str) -> GatewayNotification:
        return GatewayNotification(
            refund.refund_no,
            refund.status,
            refund.gateway_refund_id,
            source=source,
            failure_reason=refund.failure_reason,
            amount=refund.amount,
            payment_ref=refund.payment_ref,
        )
