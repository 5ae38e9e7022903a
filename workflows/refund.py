"""The refund workflow: one refund, from request to money back and stock restored (SPEC §4).

Deterministic: no I/O, clock or randomness outside the SDK. Every side effect is an activity,
idempotent by refund_no, so a replay or a retry after a crash does nothing twice. Each step is
one call to a typed activity method (`activities/contracts.py`; the code overrides it in
`activities/ledger.py`, `restore.py`, `gateway.py`) and one transaction in PostgreSQL, whose
timeline is the refund's only record: this workflow keeps none of its own (design §4).

Workflow type `Refund` (issue 11). Runs of the first type, `RefundWorkflow`
(`workflows/refund_v1.py`), finish on their own code; new refunds start here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import GatewayCalls, LedgerSteps, RestoreSteps
    from refunds.domain.decision_signing import is_authentic
    from refunds.domain.errors import NON_RETRYABLE_TYPES
    from refunds.domain.idempotency import hidden_from, request_fingerprint
    from refunds.domain.matching import gateway_mismatch, names_our_refund
    from refunds.domain.messages import (
        Applied,
        Channel,
        Decision,
        GatewayNotification,
        GatewayRefund,
        GatewayStatus,
        RefundFacts,
        RefundRequest,
        RefundRow,
        RefundStatus,
        RefundView,
        Resolution,
        ResolveOutcome,
        Step,
    )
    from refunds.domain.task_queues import gateway_task_queue
    from refunds.domain.transitions import (
        UNFINISHED_GATEWAY,
        gateway_moves_forward,
        is_late_failure,
    )

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
# Patches: each a branch that runs of older code did not take, so their histories still replay.
# Ops resolving `failed` first ask the gateway, and the step re-checks under the row lock.
RESOLVE_FAILED_ASKS_GATEWAY = "resolve-failed-asks-gateway"
# A success the gateway reports for a refund the ledger has failed reopens it and counts it.
SUCCESS_AFTER_FAILURE = "success-after-failure-reopens"
# A gateway answer that reached the run only by a signal and that the ledger never heard from a
# verified path is a hint: forgotten, and the gateway asked.
UNHEARD_IS_A_HINT = "unheard-gateway-answer-is-a-hint"
# A late failure heard as the run was ending reopens the refund in the same run.
LATE_FAILURE_AT_THE_END = "late-failure-at-the-end-reopens"
# Once our own gateway refund is known, a word about another refund under our refund_no (another
# payment, amount or currency) is ignored: it neither makes ours abnormal nor hides ours' answers.
FOREIGN_IGNORED_ONCE_OURS_KNOWN = "foreign-refund-ignored-once-ours-known"
# The answers of our own calls to the gateway (the other sources are webhooks and reconciliation).
OUR_CALLS = ("create", "poll", "resolve_check")
# A gateway refund in another currency than ours is not ours.
CURRENCY_COMPARED = "gateway-currency-compared"
# Refusals of a resolution whose step the ledger refused (the gateway spoke meanwhile).
REFUSED_BY_LEDGER = ("GatewayRefundPending", "GatewayReportedSuccess")


def workflow_id(refund_no: str) -> str:
    """One workflow per refund (SPEC §4): the id every start, signal and update uses."""
    return f"refund-{refund_no}"


def start_attributes(
    refund_no: str, order_no: str, channel: Channel, amount: int, status: RefundStatus
) -> TypedSearchAttributes:
    """What ops filter by in the Temporal UI, set by whoever starts the run: known before it
    runs, so the run itself only ever updates the status."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(REFUND_NO, refund_no),
        SearchAttributePair(ORDER_NO, order_no),
        SearchAttributePair(PAYMENT_CHANNEL, channel.value),
        SearchAttributePair(REFUND_AMOUNT, amount),
        SearchAttributePair(REFUND_STATUS, status.value),
    ]
    return TypedSearchAttributes(pairs)


def _domain_error(err: BaseException) -> ApplicationError | None:
    """The business error behind an activity failure (a local activity's may surface as the
    ApplicationError itself, hence every local step catches both)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_TYPES:
            return cause
        cause = getattr(cause, "cause", None) or cause.__cause__
    return None


@workflow.defn(name="Refund")
class RefundWorkflow:
    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        self._request = request
        self._timings = request.timings
        self._facts: RefundFacts | None = None
        self._row: RefundRow | None = None
        self._apply_error: ApplicationError | None = None
        # The apply update answers once the run knows the refund (and, when the policy
        # approves it at once, after that approval): the caller sees where it stands.
        self._answered = False
        self._status: RefundStatus | None = None
        self._decision: tuple[str, Decision] | None = None
        self._decision_recorded = False
        self._gateway: GatewayNotification | None = None
        self._late_failure: GatewayNotification | None = None
        # Why the refund the gateway shows under our refund_no is not ours; never a success.
        self._mismatch: str | None = None
        self._resolution: Resolution | None = None
        # A `failed` resolution being checked with the gateway (only under the patch above),
        # and why the ledger refused the last one: the update that asked answers with it.
        self._confirming = False
        self._confirmed: Resolution | None = None
        self._refusal: ApplicationError | None = None
        # Whether the run has taken its late failure to ops (a late one must not be dropped).
        self._late_failure_heard = False
        self._notes = 0

    # ---- the story of a refund -------------------------------------------------------------

    @workflow.run
    async def run(self, request: RefundRequest) -> RefundView:
        reopened_by = request.reopened_by
        if reopened_by is not None and self._is_success_after_failure(reopened_by):
            await self._reopen_after_failure(reopened_by)
        elif reopened_by is not None:
            await self._reopen(reopened_by)
        elif request.repair:
            await self._repair()
        elif await self._apply() and await self._await_decision():
            await self._pay_back()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._heard_success_after_failure():
            # Heard after the refund had failed (a resolution racing the gateway's answer, or
            # a signal landing as the run ended): the money went out, so it is counted.
            assert self._gateway is not None
            await self._reopen_after_failure(self._gateway)
            await workflow.wait_condition(workflow.all_handlers_finished)
        elif self._heard_late_failure_at_the_end():
            # A late failure that landed as the run was ending: ops must hear it here, since
            # the webhook that brought it found the run open and only signalled it.
            assert self._late_failure is not None
            await self._reopen(self._late_failure)
            await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _pay_back(self) -> None:
        """Approved: the gateway refund, its outcome, ops if needed, restores and finalize."""
        await self._refund_at_gateway()
        await self._settle()

    async def _settle(self) -> None:
        while True:
            if self._status == RefundStatus.PROCESSING:
                await self._await_outcome()
            if self._status == RefundStatus.ABNORMAL:
                await self._await_resolution()
            if self._status != RefundStatus.SUCCEEDED and self._gateway_succeeded():
                if not await self._complete():
                    continue  # a success the ledger never heard: ask the gateway
            break
        if self._late_failure is not None:
            await self._reopen(self._late_failure)

    async def _apply(self) -> bool:
        """Validate and reserve; an invalid request ends the run with nothing left behind."""
        try:
            applied = await self._open()
        except (ActivityError, ApplicationError) as err:
            cause = _domain_error(err)
            if cause is None:
                raise
            self._apply_error = ApplicationError(cause.message, type=cause.type, non_retryable=True)
            workflow.upsert_search_attributes([REFUND_STATUS.value_unset()])
            return False
        self._take(applied)
        if not applied.owned:
            self._answered = True
            return False  # another run owns this refund_no: answer with it, do nothing else
        self._publish()
        self._note(self._request.requested_by, "requested")
        if applied.auto_approved and applied.row.status == RefundStatus.PENDING_APPROVAL:
            self._decision = ("approve", Decision("policy"))  # validators now refuse decisions
            await self._move(
                RefundStatus.PROCESSING,
                "policy",
                "auto_approved",
                {"limit_policy": "REFUNDS_AUTO_APPROVE_LIMIT"},
            )
            self._decision_recorded = True
        self._answered = True
        return True

    async def _open(self) -> Applied:
        return await workflow.execute_local_activity_method(
            LedgerSteps.open_refund,
            self._request,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )

    async def _repair(self) -> None:
        """Its workflow was closed under a refund that is not finished (terminated, reset or
        failed from the UI): claim it from the ledger and carry it on from where it stands. A
        refund in processing asks the gateway first (lookup-first create): never paid twice."""
        claimed = await workflow.execute_local_activity_method(
            LedgerSteps.claim_refund_run,
            self._request,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        self._take(claimed, answered=True)
        if not claimed.owned:
            return  # finished meanwhile, or another run holds it: nothing to carry on
        self._publish()
        self._note("reconciliation", "repaired")
        if self._status == RefundStatus.PENDING_APPROVAL:
            if await self._await_decision():
                await self._pay_back()
        elif self._status == RefundStatus.PROCESSING:
            await self._pay_back()
        elif self._status == RefundStatus.ABNORMAL:
            await self._settle()

    async def _await_decision(self) -> bool:
        if self._status == RefundStatus.PROCESSING:
            return True  # approved by policy when it was applied
        # A decision counts from the moment its handler takes it, not when it is recorded: the
        # timer must not expire a refund whose approval is being written.
        expiry = self._timer(self._timings.approval_timeout)
        await workflow.wait_condition(lambda: self._decision is not None or expiry.done())
        # The timer and a decision may land in the same workflow task: the decision wins.
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
        facts = self._require_facts()
        try:
            refund = await workflow.execute_activity_method(
                GatewayCalls.refund_at_gateway,
                facts,
                task_queue=self._gateway_queue(facts),
                start_to_close_timeout=timedelta(seconds=self._timings.gateway_call_timeout),
                schedule_to_close_timeout=timedelta(seconds=self._timings.outcome_deadline),
                retry_policy=self._gateway_retry(),
            )
        except ActivityError as err:
            await self._gateway_call_failed(err)
            return
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
        poll_due: asyncio.Task[None] | None = None
        while True:
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
                due = poll_due = poll_due or self._timer(min(interval, remaining))
                await workflow.wait_condition(functools.partial(self._settled_or_due, due))
                if due.done():
                    poll_due = None
                    await self._poll()
                    interval = min(interval * 2, self._timings.poll_max_interval)
            if await self._act_on_gateway():
                return
            # an answer the ledger never heard, forgotten: wait and poll on, to the deadline

    async def _poll(self) -> None:
        """Ask the gateway once (the activity records its answer). A failed lookup, whatever
        the error, is no news: the deadline (or ops), never the gateway's answer, ends the wait."""
        try:
            found = await self._look_up()
        except ActivityError as err:
            await self._record(
                "gateway", "gateway_lookup_failed", {"error": str(err.cause or err)[:300]}
            )
            return
        if found is not None:
            self._observe(self._as_notification(found, "poll"))

    async def _look_up(self) -> GatewayRefund | None:
        """The gateway's refund under our refund_no, asked once (its answer is recorded)."""
        facts = self._require_facts()
        call_timeout = self._timings.gateway_call_timeout
        return await workflow.execute_activity_method(
            GatewayCalls.look_up_at_gateway,
            facts,
            task_queue=self._gateway_queue(facts),
            start_to_close_timeout=timedelta(seconds=call_timeout),
            # Bounded, so a lookup that keeps failing cannot hold the outcome deadline back.
            schedule_to_close_timeout=timedelta(seconds=call_timeout * (POLL_ATTEMPTS + 1)),
            retry_policy=self._gateway_retry(maximum_attempts=POLL_ATTEMPTS),
        )

    async def _act_on_gateway(self) -> bool:
        """Turn the gateway's terminal answer into the refund's status (success: `_complete`).
        False when the answer was a hint the ledger never heard (it is forgotten)."""
        if self._status != RefundStatus.PROCESSING:
            return True
        if self._mismatch is not None:
            await self._move(
                RefundStatus.ABNORMAL,
                "gateway",
                "gateway_refund_mismatch",
                {"reason": self._mismatch},
            )
            return True
        answer = self._gateway
        if answer is None or answer.status == GatewayStatus.SUCCEEDED:
            return True
        detail = self._answer_detail(answer)
        if answer.status == GatewayStatus.FAILED:
            return await self._gateway_move(RefundStatus.FAILED, "gateway_failed", detail)
        if answer.status == GatewayStatus.ABNORMAL:
            await self._move(RefundStatus.ABNORMAL, "gateway", "gateway_abnormal", detail)
        return True

    async def _gateway_move(
        self,
        to: RefundStatus,
        event: str,
        detail: dict[str, Any],
        heard: tuple[GatewayStatus, ...] = (GatewayStatus.FAILED,),
    ) -> bool:
        """A move the gateway's word causes, made only if the ledger heard that word from a
        verified path. False when it had not: the answer is forgotten, the gateway asked."""
        return await self._unless_unheard(self._move(to, "gateway", event, detail, heard=heard))

    async def _unless_unheard(self, step: Awaitable[None]) -> bool:
        """Run a step that requires the ledger to have heard the gateway's word. False when the
        ledger refused it as unheard: the answer is forgotten (and on the timeline)."""
        try:
            await step
        except (ActivityError, ApplicationError) as err:
            if not self._unheard(err):
                raise
            await self._forget_unheard()
            return False
        return True

    def _unheard(self, err: BaseException) -> bool:
        cause = _domain_error(err)
        unheard = cause is not None and cause.type == "GatewayAnswerUnverified"
        return unheard and workflow.patched(UNHEARD_IS_A_HINT)

    async def _forget_unheard(self) -> None:
        """What a signal said and nothing verified: on the timeline, never acted on."""
        said = self._gateway
        await self._record(
            "system",
            "gateway_answer_unverified",
            {
                "gateway_status": said.status.value if said else None,
                "via": said.source if said else None,
            },
        )
        self._gateway = None
        self._late_failure = None

    async def _await_resolution(self) -> None:
        """Ops decide an abnormal refund; until they do, it keeps listening to the gateway, whose
        final answer settles it (a late failure, already the gateway's last word, does not)."""
        while True:
            await self._listen_until_decided()
            resolution = self._resolution
            if resolution is None:
                if self._gateway_final() == GatewayStatus.FAILED:
                    detail = {"via": self._gateway.source if self._gateway else None}
                    failed = await self._gateway_move(
                        RefundStatus.FAILED, "gateway_failed", detail | {"after": "abnormal"}
                    )
                    if not failed:
                        continue
                return  # the gateway succeeded: restores and finalize follow
            if resolution.outcome != ResolveOutcome.FAILED or await self._resolve_failed(
                resolution
            ):
                return

    async def _listen_until_decided(self) -> None:
        interval = timedelta(seconds=self._timings.abnormal_poll_interval)
        while self._resolution is None and self._gateway_final() is None:
            try:
                await workflow.wait_condition(
                    lambda: self._resolution is not None or self._gateway_final() is not None,
                    timeout=interval,
                )
            except TimeoutError:
                await self._poll()

    async def _resolve_failed(self, resolution: Resolution) -> bool:
        """Ops found no money went back: `failed`, the amount released. A resolution the gateway
        was asked about is committed only if the ledger, under the row lock, has heard nothing
        since that says the gateway paid or may still pay; else it is refused and the refund
        goes on listening. False when refused."""
        detail = {"note": resolution.note}
        if resolution is not self._confirmed:  # a run of older code took it unasked
            await self._move(RefundStatus.FAILED, resolution.actor, "resolved_failed", detail)
            return True
        try:
            await self._move(
                RefundStatus.FAILED, resolution.actor, "resolved_failed", detail, confirm=True
            )
        except (ActivityError, ApplicationError) as err:
            cause = _domain_error(err)
            if cause is None or cause.type not in REFUSED_BY_LEDGER:
                raise
            self._resolution = self._confirmed = None
            self._refusal = ApplicationError(cause.message, type=cause.type, non_retryable=True)
            return False
        return True

    async def _complete(self) -> bool:
        """Money back: restores and `succeeded` in one step (one transaction). By the gateway's
        word only if the ledger heard it (after a late failure, its last word is that one);
        False when it had not (the answer is forgotten)."""
        heard: tuple[GatewayStatus, ...] = ()
        if self._resolution is not None:
            actor, event = self._resolution.actor, "resolved_succeeded"
            detail: dict[str, Any] = {"note": self._resolution.note}
        else:
            actor, event = "system", "succeeded"
            detail = self._answer_detail(self._gateway) if self._gateway else {}
            heard = (GatewayStatus.SUCCEEDED,)
            if self._late_failure is not None:
                heard += (GatewayStatus.FAILED,)
        step = self._step(actor, event, detail, RefundStatus.SUCCEEDED, heard=heard)
        if not await self._unless_unheard(self._complete_step(step)):
            return False
        self._moved(RefundStatus.SUCCEEDED, actor, event)
        return True

    async def _complete_step(self, step: Step) -> None:
        self._row = await workflow.execute_local_activity_method(
            RestoreSteps.complete_refund,
            step,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )

    async def _reopen(self, failure: GatewayNotification) -> None:
        """A succeeded refund reported failed later: abnormal, with the reason, for ops. If ops
        find no money went back, the points, stock and coupon it restored are taken back."""
        self._late_failure_heard = True
        if self._facts is None:  # a new run: the refund's facts come from the ledger
            self._take(await self._open(), answered=True)
        self._status = RefundStatus.SUCCEEDED
        self._resolution = None
        reopened = await self._gateway_move(
            RefundStatus.ABNORMAL,
            "gateway_failed_after_success",
            {
                "failure_reason": failure.failure_reason,
                "event_id": failure.event_id,
                "event_type": failure.event_type,
            },
        )
        if not reopened:
            return  # a failure nobody verified: the refund stays succeeded
        await workflow.wait_condition(lambda: self._resolution is not None)
        resolution = self._resolution
        assert resolution is not None
        if resolution.outcome == ResolveOutcome.SUCCEEDED:
            await self._move(
                RefundStatus.SUCCEEDED,
                resolution.actor,
                "resolved_succeeded",
                {"note": resolution.note},
            )
            return
        step = self._step(
            resolution.actor, "resolved_failed", {"note": resolution.note}, RefundStatus.FAILED
        )
        self._row = await workflow.execute_local_activity_method(
            RestoreSteps.take_back_restores,
            step,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        self._moved(RefundStatus.FAILED, resolution.actor, "resolved_failed")

    async def _reopen_after_failure(self, success: GatewayNotification) -> None:
        """The gateway paid a refund the ledger had failed: the amount is the order's again
        (abnormal, for ops to see), then the gateway's word settles it: restores, `succeeded`.
        If the order's other refunds have taken that amount meanwhile, the ledger cannot count
        it (the money rules hold): the refund stays failed with the finding on its timeline."""
        if self._facts is None:  # a new run: the refund's facts come from the ledger
            self._take(await self._open(), answered=True)
        self._status = RefundStatus.FAILED
        self._resolution = self._confirmed = None
        self._gateway = success
        detail = self._answer_detail(success) | {"event_id": success.event_id}
        try:
            reopened = await self._gateway_move(
                RefundStatus.ABNORMAL,
                "gateway_succeeded_after_failure",
                detail,
                heard=(GatewayStatus.SUCCEEDED,),
            )
        except (ActivityError, ApplicationError) as err:
            cause = _domain_error(err)
            if cause is None or cause.type != "RefundExceedsPaid":
                raise
            await self._record(
                "gateway",
                "gateway_succeeded_after_failure",
                detail | {"uncounted": cause.message},
            )
            return
        if reopened:  # else a success nobody verified: the refund stays failed
            await self._settle()

    # ---- messages ---------------------------------------------------------------------------

    @workflow.update
    async def apply(self, caller: RefundRequest) -> RefundView:
        """The caller's synchronous answer to its request (Update-with-Start)."""
        await workflow.wait_condition(lambda: self._answered or self._apply_error is not None)
        if self._apply_error is not None:
            raise self._apply_error
        return self.state()

    @apply.validator
    def _validate_apply(self, caller: RefundRequest) -> None:
        """A second caller with the same refund_no attaches to this run (USE_EXISTING): it gets
        this refund only if it asked for the same thing, and never sees another customer's."""
        mine = self._request
        if hidden_from(caller, mine.requested_by):
            raise ApplicationError(f"refund {caller.refund_no} not found", type="RefundNotFound")
        if request_fingerprint(caller) != request_fingerprint(mine):
            raise ApplicationError(
                f"refund {caller.refund_no} exists with a different request", type="RefundConflict"
            )

    @workflow.update
    async def approve(self, decision: Decision) -> RefundView:
        await self._decide("approve", decision)
        return self.state()

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        self._check_signed("approve", decision.actor, "", decision.note, decision.signature)
        self._check_decidable(decision)

    @workflow.update
    async def reject(self, decision: Decision) -> RefundView:
        await self._decide("reject", decision)
        return self.state()

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        self._check_signed("reject", decision.actor, "", decision.note, decision.signature)
        self._check_decidable(decision, four_eyes=False)

    @workflow.update
    async def resolve(self, resolution: Resolution) -> RefundView:
        """Ops decide an abnormal refund: paid back offline (succeeded) or failed. `failed` is
        taken only once the gateway says it is not paying this refund."""
        self._check_resolvable(resolution)
        if resolution.outcome == ResolveOutcome.FAILED and workflow.patched(
            RESOLVE_FAILED_ASKS_GATEWAY
        ):
            await self._confirm_not_paying(resolution)
            self._confirmed = resolution
        self._resolution = resolution
        await workflow.wait_condition(
            lambda: self._status != RefundStatus.ABNORMAL or self._refusal is not None
        )
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            raise refusal
        return self.state()

    @resolve.validator
    def _validate_resolve(self, resolution: Resolution) -> None:
        outcome = resolution.outcome.value
        self._check_signed(
            "resolve", resolution.actor, outcome, resolution.note, resolution.signature
        )
        self._check_resolvable(resolution)
        if resolution.outcome == ResolveOutcome.FAILED:
            self._check_not_paying()

    @workflow.signal
    def gateway_notification(self, notification: GatewayNotification) -> None:
        """News from the gateway (the API signals only notifications that move it forward)."""
        self._observe(notification)

    @workflow.query
    def state(self) -> RefundView:
        """The refund as its last step committed it; its timeline is read from the API."""
        return RefundView(self._request.refund_no, self._status, self._facts, self._row)

    # ---- helpers ----------------------------------------------------------------------------

    def _check_signed(self, verb: str, actor: str, outcome: str, note: str, signature: str) -> None:
        """Only the API, which knows who the person is, decides for a person: validators run
        when an update arrives, never in a replay, so a key rotated away later changes no
        stored history."""
        refund_no = self._request.refund_no
        if not is_authentic(signature, verb, refund_no, actor, outcome, note):
            raise ApplicationError(
                f"{verb} of {refund_no} is not signed by the API's decision key",
                type="DecisionNotAuthentic",
            )

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
        if (
            self._status != RefundStatus.ABNORMAL
            or self._resolution is not None
            or self._confirming
        ):
            raise ApplicationError(
                f"refund is {self._status}, not abnormal", type="RefundNotAbnormal"
            )
        if resolution.outcome == ResolveOutcome.FAILED and self._gateway_reported_success():
            # The money went out: releasing the amount would let it be refunded twice.
            raise ApplicationError(
                "the gateway reported this refund succeeded; it cannot be resolved failed",
                type="GatewayReportedSuccess",
            )

    def _check_not_paying(self) -> None:
        """What the run has heard must not say the gateway may still pay this refund (that it
        paid, `_check_resolvable` refuses first)."""
        if self._gateway is not None and self._gateway.status in UNFINISHED_GATEWAY:
            raise ApplicationError(
                f"the gateway still has this refund {self._gateway.status.value}: it may still "
                "pay it, so it cannot be resolved failed",
                type="GatewayRefundPending",
            )

    async def _confirm_not_paying(self, resolution: Resolution) -> None:
        """Ask the gateway now (the abnormal refund's last answer may be old): a refund it holds
        unfinished or paid refuses the resolution; one it cannot be asked about too."""
        self._confirming = True
        try:
            found = await self._look_up()
        except ActivityError:
            raise ApplicationError(
                "the gateway could not be asked whether it is paying this refund; nothing "
                "changed, try again",
                type="GatewayUnconfirmed",
            ) from None
        finally:
            self._confirming = False
        if found is not None:
            self._observe(self._as_notification(found, "resolve_check"))
        self._check_resolvable(resolution)
        self._check_not_paying()

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
            if not self._about_ours(notification) and workflow.patched(
                FOREIGN_IGNORED_ONCE_OURS_KNOWN
            ):
                return
            self._mismatch = self._mismatch or mismatch
            return
        current = self._gateway.status if self._gateway else None
        if is_late_failure(current, notification.status):
            self._late_failure = notification
        elif gateway_moves_forward(current, notification.status):
            self._gateway = notification

    def _about_ours(self, contradicting: GatewayNotification) -> bool:
        """Whether a word that contradicts our refund is about ours: it names our gateway refund,
        or our own create or lookup found it before ours was known (it took our refund_no). A
        webhook naming another gateway refund under our refund_no is about that one alone."""
        ours = self._gateway.gateway_refund_id if self._gateway is not None else None
        return names_our_refund(
            ours, contradicting.gateway_refund_id, contradicting.source in OUR_CALLS
        )

    def _mismatch_of(self, notification: GatewayNotification) -> str | None:
        if self._facts is None:
            return None
        facts = self._facts
        seen = (notification.amount, notification.payment_ref)
        mismatch = gateway_mismatch(facts.amount, facts.payment_ref, *seen)
        if mismatch is not None:
            return mismatch
        # Another currency is another refund (5000 yen is not 50 dollars); runs of older code
        # did not compare it, so the patch is asked only when the currency differs.
        by_currency = gateway_mismatch(
            facts.amount,
            facts.payment_ref,
            *seen,
            currency=facts.currency,
            seen_currency=notification.currency,
        )
        return by_currency if by_currency and workflow.patched(CURRENCY_COMPARED) else None

    def _gateway_settled(self) -> bool:
        """Nothing more to wait for in `processing`: a terminal answer, or a refund not ours."""
        terminal = self._gateway is not None and self._gateway.status in TERMINAL_GATEWAY
        return terminal or self._mismatch is not None

    def _settled_or_due(self, due: asyncio.Task[None]) -> bool:
        return self._gateway_settled() or due.done()

    def _gateway_final(self) -> GatewayStatus | None:
        """The gateway's final word on our refund (succeeded or failed), if it has given one."""
        if self._mismatch is not None or self._gateway is None:
            return None
        return self._gateway.status if self._gateway.status in FINAL_GATEWAY else None

    def _is_success_after_failure(self, news: GatewayNotification) -> bool:
        return news.status == GatewayStatus.SUCCEEDED and workflow.patched(SUCCESS_AFTER_FAILURE)

    def _heard_success_after_failure(self) -> bool:
        """The run failed the refund, and has since heard the gateway pay it (the condition is
        checked first: the patch marker is written only by runs that take the branch)."""
        paid = self._gateway_final() == GatewayStatus.SUCCEEDED
        return (
            self._status == RefundStatus.FAILED and paid and workflow.patched(SUCCESS_AFTER_FAILURE)
        )

    def _heard_late_failure_at_the_end(self) -> bool:
        """A late failure the run heard after it had settled the refund (the patch is asked only
        then: runs of older code dropped it)."""
        unheard = self._late_failure is not None and not self._late_failure_heard
        return (
            unheard
            and self._status == RefundStatus.SUCCEEDED
            and workflow.patched(LATE_FAILURE_AT_THE_END)
        )

    def _gateway_reported_success(self) -> bool:
        return self._gateway_final() == GatewayStatus.SUCCEEDED and self._late_failure is None

    def _gateway_succeeded(self) -> bool:
        if self._status == RefundStatus.PROCESSING:
            return self._mismatch is None and self._gateway_final() == GatewayStatus.SUCCEEDED
        if self._status != RefundStatus.ABNORMAL:
            return False
        if self._resolution is not None:
            return self._resolution.outcome == ResolveOutcome.SUCCEEDED
        # As in processing: a success followed by a late failure first succeeds (restores
        # included), then reopens for ops, who may take the restores back.
        return self._gateway_final() == GatewayStatus.SUCCEEDED

    def _step(
        self,
        actor: str,
        event: str,
        detail: dict[str, Any],
        to: RefundStatus | None = None,
        key: str = "",
        confirm: bool = False,
        heard: tuple[GatewayStatus, ...] = (),
    ) -> Step:
        clean = {k: v for k, v in detail.items() if v is not None}
        return Step(
            self._require_facts(),
            actor,
            event,
            clean,
            to_status=to,
            key=key,
            confirm_gateway_not_paying=confirm,
            requires_heard=list(heard),
        )

    async def _move(
        self,
        to: RefundStatus,
        actor: str,
        event: str,
        detail: dict[str, Any],
        confirm: bool = False,
        heard: tuple[GatewayStatus, ...] = (),
    ) -> None:
        """One step: the timeline entry and the status move, in one transaction."""
        self._row = await workflow.execute_local_activity_method(
            LedgerSteps.record_step,
            self._step(actor, event, detail, to, confirm=confirm, heard=heard),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )
        self._moved(to, actor, event)

    def _moved(self, to: RefundStatus, actor: str, event: str) -> None:
        self._status = to
        workflow.upsert_search_attributes([REFUND_STATUS.value_set(to.value)])
        self._note(actor, event)

    async def _record(self, actor: str, event: str, detail: dict[str, Any]) -> None:
        """A timeline entry without a move, written once: its key counts only these calls, so
        signals between a failed workflow task and its retry cannot change it."""
        self._notes += 1
        key = f"{self._request.refund_no}:{event}:{workflow.info().run_id}:{self._notes}"
        await workflow.execute_local_activity_method(
            LedgerSteps.record_step,
            self._step(actor, event, detail, key=key),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=LEDGER_RETRY,
        )

    def _note(self, actor: str, event: str) -> None:
        """What ops read on the workflow's page in the Temporal UI; no command, replay-safe."""
        status = self._status.value if self._status is not None else "applying"
        waiting = WAITING_FOR.get(self._status, "nothing: finished").format(
            refund_no=self._request.refund_no
        )
        workflow.set_current_details(
            f"**{status}** after `{event}` by {actor} at {workflow.now().isoformat()}\n\n"
            f"Waiting for {waiting}"
        )

    def _take(self, applied: Applied, answered: bool = False) -> None:
        self._facts, self._row = applied.facts, applied.row
        self._status = applied.row.status
        self._answered = self._answered or answered

    def _publish(self) -> None:
        """Search attributes: all of them if the starter could not set them, else the status
        only when it differs from the one the run was started with."""
        facts = self._require_facts()
        status = self._status.value if self._status is not None else None
        known = workflow.info().typed_search_attributes
        updates: list[SearchAttributeUpdate[Any]] = []
        if known.get(REFUND_NO) is None:
            updates += [
                REFUND_NO.value_set(facts.refund_no),
                ORDER_NO.value_set(facts.order_no),
                PAYMENT_CHANNEL.value_set(facts.channel.value),
                REFUND_AMOUNT.value_set(facts.amount),
            ]
        if status is not None and known.get(REFUND_STATUS) != status:
            updates.append(REFUND_STATUS.value_set(status))
        if updates:
            workflow.upsert_search_attributes(updates)

    @staticmethod
    def _timer(seconds: float) -> asyncio.Task[None]:
        """A durable timer the run does not cancel when it stops waiting for it: a refund that
        finishes first leaves it behind unfired, with no history event (a cancel is two)."""
        return asyncio.create_task(asyncio.sleep(seconds))

    def _gateway_queue(self, facts: RefundFacts) -> str:
        return gateway_task_queue(workflow.info().task_queue, facts.channel)

    def _gateway_retry(self, maximum_attempts: int = 0) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._timings.gateway_retry_initial),
            maximum_interval=timedelta(seconds=self._timings.gateway_retry_max),
            maximum_attempts=maximum_attempts,
            non_retryable_error_types=NON_RETRYABLE_TYPES,
        )

    def _require_facts(self) -> RefundFacts:
        if self._facts is None:
            raise ApplicationError(
                "refund was not applied", type="RefundNotApplied", non_retryable=True
            )
        return self._facts

    @staticmethod
    def _answer_detail(answer: GatewayNotification) -> dict[str, Any]:
        return {
            "gateway_status": answer.status.value,
            "via": answer.source,
            "gateway_refund_id": answer.gateway_refund_id,
            "failure_reason": answer.failure_reason,
        }

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
            currency=refund.currency or None,
        )
