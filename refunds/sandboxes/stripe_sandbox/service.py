"""What the sandbox does: payments, refunds and their lifecycle, and the events they emit.

Methods are synchronous and run on the server's event loop; the only waiting is the refund
lifecycle (`_advance`), an asyncio task per refund that sleeps until the next transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable
from typing import Any

from refunds.sandboxes.chaos import ChaosMode
from refunds.sandboxes.stripe_sandbox.config import StripeSandboxConfig
from refunds.sandboxes.stripe_sandbox.errors import StripeAPIError
from refunds.sandboxes.stripe_sandbox.faults import OUTCOME_ACTIONS, WEBHOOK_ACTIONS, FaultRegistry
from refunds.sandboxes.stripe_sandbox.forms import (
    parse_bool,
    parse_int,
    parse_metadata,
    parse_range,
)
from refunds.sandboxes.stripe_sandbox.store import Obj, StateStore, new_id, now
from refunds.sandboxes.stripe_sandbox.webhooks import WebhookSender

# The API version the installed `stripe` package pins; events carry it like Stripe's do.
API_VERSION = "2026-10-28.endive"
# Stripe's test PaymentMethods that pay; `pm_card_refundFail`'s refunds fail after succeeding.
PAYING_METHODS = frozenset(
    {
        "pm_card_visa",
        "pm_card_visa_debit",
        "pm_card_mastercard",
        "pm_card_mastercard_debit",
        "pm_card_amex",
        "pm_card_discover",
        "pm_card_us",
        "pm_card_refundFail",
    }
)
DECLINING_METHODS = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card"),
}
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
PENDING = frozenset({"pending", "requires_action"})


class StripeSandbox:
    """The state store, fault registry and webhook sender, wired to Stripe's semantics."""

    def __init__(self, config: StripeSandboxConfig) -> None:
        self.config = config
        self.store = StateStore(config.state_file)
        self.faults = FaultRegistry()
        self.chaos = ChaosMode()
        self.webhooks = WebhookSender(config.webhook_url, config.webhook_secret, self.store.save)
        # The endpoint's `enabled_events` (None: every event); the control API may change it.
        self.webhook_events = config.webhook_events
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def state(self) -> Any:
        return self.store.state

    async def start(self) -> None:
        """Resume the lifecycle of refunds loaded from the state file."""
        await self.webhooks.start()
        for refund_id in list(self.state.refunds):
            self._drive(refund_id)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.webhooks.stop()

    # -- payments -------------------------------------------------------------------------

    def create_payment_intent(self, params: dict[str, Any]) -> Obj:
        amount = parse_int(params, "amount", required=True)
        assert amount is not None
        if amount <= 0:
            raise StripeAPIError.invalid("Amount must be at least 1.", "amount", "amount_too_small")
        currency = str(params.get("currency", "")).lower()
        if len(currency) != 3 or not currency.isalpha():
            raise StripeAPIError.invalid("Missing or invalid currency.", "currency")
        pi_id = new_id("pi")
        intent: Obj = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "status": "requires_payment_method",
            "payment_method": params.get("payment_method"),
            "latest_charge": None,
            "metadata": parse_metadata(params),
            "description": params.get("description"),
            "client_secret": f"{pi_id}_secret_{new_id('cs')[3:]}",
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "last_payment_error": None,
            "created": now(),
            "livemode": False,
        }
        if intent["payment_method"]:
            intent["status"] = "requires_confirmation"
        self.state.payment_intents[pi_id] = intent
        self.store.save()
        if parse_bool(params, "confirm"):
            return self._confirm(intent)
        return intent

    def confirm_payment_intent(self, pi_id: str, params: dict[str, Any]) -> Obj:
        intent = self.payment_intent(pi_id)
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
        if intent["status"] == "succeeded":
            raise StripeAPIError.invalid(
                "This PaymentIntent's payment_method could not be updated because it has a status "
                "of succeeded.",
                code="payment_intent_unexpected_state",
            )
        return self._confirm(intent)

    def _confirm(self, intent: Obj) -> Obj:
        method = intent["payment_method"]
        if not method:
            raise StripeAPIError.invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                "payment_method",
                "payment_intent_unexpected_state",
            )
        if method not in PAYING_METHODS:
            self._decline(intent, method)
        charge_id = new_id("ch")
        self.state.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"],
            "captured": True,
            "currency": intent["currency"],
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method": method,
            "status": "succeeded",
            "metadata": {},
            "created": now(),
            "livemode": False,
        }
        intent.update(status="succeeded", latest_charge=charge_id, amount_received=intent["amount"])
        self.store.save()
        return intent

    def _decline(self, intent: Obj, method: str) -> None:
        code, decline_code = DECLINING_METHODS.get(method, ("card_declined", "generic_decline"))
        message = "Your card was declined."
        error = {"type": "card_error", "code": code, "decline_code": decline_code}
        intent.update(
            status="requires_payment_method", last_payment_error=error | {"message": message}
        )
        self.store.save()
        raise StripeAPIError(
            402,
            "card_error",
            message,
            code,
            extra={"decline_code": decline_code, "payment_intent": intent},
        )

    def payment_intent(self, pi_id: str) -> Obj:
        intent = self.state.payment_intents.get(pi_id)
        if intent is None:
            raise StripeAPIError.missing("payment_intent", pi_id)
        return intent

    def charge(self, charge_id: str) -> Obj:
        charge = self.state.charges.get(charge_id)
        if charge is None:
            raise StripeAPIError.missing("charge", charge_id)
        return self._render_charge(charge)

    def _render_charge(self, charge: Obj) -> Obj:
        refunds = list(reversed(self.store.refunds_of_charge(charge["id"])))
        refunded = self.store.amount_refunded(charge["id"])
        return charge | {
            "amount_refunded": refunded,
            "refunded": refunded == charge["amount"],
            "refunds": {
                "object": "list",
                "data": copy.deepcopy(refunds),
                "has_more": False,
                "total_count": len(refunds),
                "url": f"/v1/charges/{charge['id']}/refunds",
            },
        }

    # -- refunds --------------------------------------------------------------------------

    def create_refund(self, params: dict[str, Any]) -> Obj:
        metadata = parse_metadata(params)
        refund_no = metadata.get("refund_no")
        charge = self._charge_to_refund(params)
        amount = self._refund_amount(charge, params, refund_no)
        reason = params.get("reason") or None
        if reason is not None and reason not in REFUND_REASONS:
            raise StripeAPIError.invalid(
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                "reason",
            )
        refund: Obj = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": new_id("txn"),
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "destination_details": None,
            "failure_reason": None,
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "pending",
            "transfer_reversal": None,
        }
        self.state.refunds[refund["id"]] = refund
        self.state.plans[refund["id"]] = self._plan(charge, refund_no)
        self._emit("refund.created", refund)
        # As at Stripe, the charge counts as refunded from the moment a refund is created (its
        # amount_refunded includes pending refunds), not when the refund succeeds.
        charge_now = self._render_charge(self.state.charges[refund["charge"]])
        self._emit("charge.refunded", charge_now, refund=refund)
        self.store.save()
        self._drive(refund["id"])
        return refund

    def _charge_to_refund(self, params: dict[str, Any]) -> Obj:
        pi_id, charge_id = params.get("payment_intent"), params.get("charge")
        if not pi_id and not charge_id:
            raise StripeAPIError.invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        if pi_id:
            intent = self.state.payment_intents.get(pi_id)
            if intent is None:
                raise StripeAPIError.missing("payment_intent", pi_id, param="payment_intent")
            if intent["status"] != "succeeded":
                raise StripeAPIError.invalid(
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    "payment_intent",
                    "charge_not_refundable",
                )
            if charge_id and charge_id != intent["latest_charge"]:
                raise StripeAPIError.invalid(
                    f"Charge {charge_id} does not belong to PaymentIntent {pi_id}.", "charge"
                )
            charge_id = intent["latest_charge"]
        charge = self.state.charges.get(charge_id)
        if charge is None:
            raise StripeAPIError.missing("charge", str(charge_id), param="charge")
        return charge

    def _refund_amount(self, charge: Obj, params: dict[str, Any], refund_no: str | None) -> int:
        remaining = charge["amount"] - self.store.amount_refunded(charge["id"])
        forced = any(f.action == "permanent_error" for f in self.faults.for_refund(refund_no))
        if remaining <= 0 or forced:
            raise StripeAPIError.invalid(
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = parse_int(params, "amount", required=False)
        if amount is None:
            return remaining
        if amount <= 0:
            raise StripeAPIError.invalid(
                "This value must be greater than or equal to 1.",
                "amount",
                "parameter_invalid_integer",
            )
        if amount > remaining:
            raise StripeAPIError.invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                "amount",
                "amount_too_large",
            )
        return amount

    def _plan(self, charge: Obj, refund_no: str | None) -> Obj:
        """Decide now how this refund will move, so a restart replays the same story."""
        plan: Obj = {
            "outcome": "succeed",
            "due_at": time.time() + self.config.refund_delay,
            "after": 1.0,
            "fail_at": None,
            "failure_reason": "expired_or_canceled_card",
            "webhook_faults": [],
            "held_events": [],
        }
        if charge.get("payment_method") == "pm_card_refundFail":
            plan["outcome"] = "fail_after_success"
        for fault in self.faults.for_refund(refund_no):
            if fault.action in OUTCOME_ACTIONS:
                plan.update(outcome=fault.action, after=fault.after)
                plan["failure_reason"] = fault.failure_reason
            elif fault.action in WEBHOOK_ACTIONS:
                plan["webhook_faults"].append(fault.action)
        return plan

    def refund(self, refund_id: str) -> Obj:
        refund = self.state.refunds.get(refund_id)
        if refund is None:
            raise StripeAPIError.missing("refund", refund_id)
        return refund

    def list_refunds(self, params: dict[str, Any]) -> Obj:
        limit = parse_int(params, "limit", required=False) or 10
        if not 1 <= limit <= 100:
            raise StripeAPIError.invalid("limit must be between 1 and 100", "limit")
        page, has_more = _page(
            self.store.newest_first(),
            self._refund_filter(params),
            limit,
            params.get("starting_after"),
            params.get("ending_before"),
        )
        return {"object": "list", "data": page, "has_more": has_more, "url": "/v1/refunds"}

    def _refund_filter(self, params: dict[str, Any]) -> Callable[[Obj], bool]:
        """Without `payment_intent` or `charge` the list spans the account (reconciliation)."""
        pi_id, charge_id = params.get("payment_intent"), params.get("charge")
        if pi_id and pi_id not in self.state.payment_intents:
            raise StripeAPIError.missing("payment_intent", pi_id, param="payment_intent")
        created_in = parse_range(params, "created")
        return lambda r: (
            (not pi_id or r["payment_intent"] == pi_id)
            and (not charge_id or r["charge"] == charge_id)
            and created_in(r["created"])
        )

    # -- lifecycle ------------------------------------------------------------------------

    def succeed_refund(self, refund_id: str) -> Obj:
        refund = self.refund(refund_id)
        if refund["status"] not in PENDING:
            raise StripeAPIError.invalid(f"Refund {refund_id} is {refund['status']}, not pending.")
        previous = {"status": refund["status"]}
        refund["status"] = "succeeded"
        plan = self.state.plans[refund_id]
        if plan["outcome"] == "fail_after_success":
            plan["fail_at"] = time.time() + plan["after"]
        self._emit("refund.updated", refund, previous)
        self._emit("charge.refund.updated", refund, previous)
        self._release_held(refund_id)
        self.store.save()
        return refund

    def fail_refund(self, refund_id: str, failure_reason: str) -> Obj:
        refund = self.refund(refund_id)
        if refund["status"] not in PENDING | {"succeeded"}:
            raise StripeAPIError.invalid(f"Refund {refund_id} is already {refund['status']}.")
        previous = {"status": refund["status"], "failure_reason": None}
        refund.update(status="failed", failure_reason=failure_reason)
        refund["failure_balance_transaction"] = new_id("txn")
        self.state.plans[refund_id]["outcome"] = "failed"
        self._emit("refund.updated", refund, previous)
        self._emit("charge.refund.updated", refund, previous)
        self._emit("refund.failed", refund, previous)
        self._release_held(refund_id)
        self.store.save()
        return refund

    def backdate(self, refund_id: str, created: int) -> Obj:
        """Move a refund's `created` (a control endpoint): reconciliation tests need refunds
        of "yesterday" or of a fixed window, which real time cannot give them."""
        refund = self.refund(refund_id)
        refund["created"] = created
        self.store.save()
        return refund

    def force(self, refund_id: str, to: str, failure_reason: str | None = None) -> Obj:
        """A control-endpoint transition: stop the timer, move, and let the plan go on."""
        self.refund(refund_id)
        task = self._tasks.pop(refund_id, None)
        if task is not None:
            task.cancel()
        try:
            if to == "succeed":
                return self.succeed_refund(refund_id)
            reason = failure_reason or self.state.plans[refund_id]["failure_reason"]
            return self.fail_refund(refund_id, reason)
        finally:
            self._drive(refund_id)

    def _drive(self, refund_id: str) -> None:
        refund, plan = self.state.refunds[refund_id], self.state.plans[refund_id]
        waiting = refund["status"] in PENDING and plan["outcome"] != "pending_forever"
        late_failure = refund["status"] == "succeeded" and plan["outcome"] == "fail_after_success"
        if not (waiting or late_failure) or refund_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._advance(refund_id))
        self._tasks[refund_id] = task
        task.add_done_callback(lambda t: self._forget(refund_id, t))

    def _forget(self, refund_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(refund_id) is task:
            del self._tasks[refund_id]

    async def _advance(self, refund_id: str) -> None:
        refund, plan = self.state.refunds[refund_id], self.state.plans[refund_id]
        if refund["status"] in PENDING:
            await _sleep_until(plan["due_at"])
            if plan["outcome"] == "fail":
                self.fail_refund(refund_id, plan["failure_reason"])
                return
            self.succeed_refund(refund_id)
        if refund["status"] == "succeeded" and plan["outcome"] == "fail_after_success":
            await _sleep_until(plan["fail_at"])
            self.fail_refund(refund_id, plan["failure_reason"])

    # -- events ---------------------------------------------------------------------------

    def _emit(
        self, type_: str, obj: Obj, previous: Obj | None = None, refund: Obj | None = None
    ) -> None:
        refund = refund or obj
        subscribed = self.subscribed(type_)
        event: Obj = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            # As at Stripe: how many endpoints this event is owed to (0 when none subscribes).
            "pending_webhooks": 1 if subscribed else 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        if previous:
            event["data"]["previous_attributes"] = previous
        plan = self.state.plans[refund["id"]]
        faults = plan["webhook_faults"]
        record: Obj = {
            "event": event,
            "refund_id": refund["id"],
            "refund_no": refund["metadata"].get("refund_no"),
            "subscribed": subscribed,
            "suppressed": "no_webhook" in faults,
            "deliveries": [],
        }
        self.state.events.append(record)
        if record["suppressed"] or not subscribed:
            return
        if "out_of_order_webhooks" in faults and type_ == "refund.created":
            plan["held_events"].append(event["id"])
            return
        self._send(record, duplicate="duplicate_webhook" in faults)

    def subscribed(self, event_type: str) -> bool:
        return self.webhook_events is None or event_type in self.webhook_events

    def subscribe(self, events: frozenset[str] | None) -> None:
        """Change the endpoint's `enabled_events`, as a shop does in Stripe's dashboard: events
        emitted from now on follow it. Not saved: a restart takes it from the config again."""
        self.webhook_events = events

    def _send(self, record: Obj, duplicate: bool) -> None:
        for _ in range(2 if duplicate else 1):
            self.webhooks.enqueue(record)

    def _release_held(self, refund_id: str) -> None:
        plan = self.state.plans[refund_id]
        held, plan["held_events"] = plan["held_events"], []
        for record in self.state.events:
            if record["event"]["id"] in held:
                self._send(record, duplicate="duplicate_webhook" in plan["webhook_faults"])

    def list_events(self, params: dict[str, Any]) -> Obj:
        """`GET /v1/events`: every event the account generated, newest first, whether or not
        the webhook endpoint subscribes to it (as Stripe keeps them, for 30 days)."""
        limit = parse_int(params, "limit", required=False) or 10
        if not 1 <= limit <= 100:
            raise StripeAPIError.invalid("limit must be between 1 and 100", "limit")
        wanted, created_in = _event_types(params), parse_range(params, "created")
        page, has_more = _page(
            [r["event"] for r in reversed(self.state.events)],
            lambda e: wanted(e["type"]) and created_in(e["created"]),
            limit,
            params.get("starting_after"),
            params.get("ending_before"),
            kind="event",
        )
        return {
            "object": "list",
            "data": copy.deepcopy(page),
            "has_more": has_more,
            "url": "/v1/events",
        }

    def event(self, event_id: str) -> Obj:
        for record in self.state.events:
            if record["event"]["id"] == event_id:
                return record["event"]
        raise StripeAPIError.missing("event", event_id)

    def resend(self, event_id: str) -> Obj:
        for record in self.state.events:
            if record["event"]["id"] == event_id:
                self.webhooks.enqueue(record)
                return record
        raise StripeAPIError.missing("event", event_id)


def _event_types(params: dict[str, Any]) -> Callable[[str], bool]:
    """Stripe's `type` (one name, or a group with `*`: `refund.*`) or `types[]` (up to 20
    names), never both."""
    one, many = params.get("type"), params.get("types")
    if one is not None and many is not None:
        raise StripeAPIError.invalid("You may pass either type or types, but not both.", "types")
    if many is not None:
        if not isinstance(many, list) or not 1 <= len(many) <= 20:
            raise StripeAPIError.invalid("types must be an array of 1 to 20 event types", "types")
        names = frozenset(str(n) for n in many)
        return lambda type_: type_ in names
    if one is None or one == "":
        return lambda type_: True
    pattern = str(one)
    if "*" in pattern:
        prefix = pattern.split("*", 1)[0]
        return lambda type_: type_.startswith(prefix)
    return lambda type_: type_ == pattern


def _page(
    items: list[Obj],
    keep: Callable[[Obj], bool],
    limit: int,
    starting_after: str | None,
    ending_before: str | None,
    kind: str = "refund",
) -> tuple[list[Obj], bool]:
    """Stripe cursor pagination over a newest-first list. The cursor is placed in the whole
    list before filtering, so a cursor the filter would drop still marks a position."""
    ids = [item["id"] for item in items]
    for name, cursor in (("starting_after", starting_after), ("ending_before", ending_before)):
        if cursor and cursor not in ids:
            raise StripeAPIError.missing(kind, cursor, param=name)
    if starting_after:
        rest = [i for i in items[ids.index(starting_after) + 1 :] if keep(i)]
        return rest[:limit], len(rest) > limit
    if ending_before:
        before = [i for i in items[: ids.index(ending_before)] if keep(i)]
        return before[-limit:], len(before) > limit
    kept = [i for i in items if keep(i)]
    return kept[:limit], len(kept) > limit


async def _sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.time()))
