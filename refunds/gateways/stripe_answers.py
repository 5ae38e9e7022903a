"""Stripe answers (refunds, and the PaymentIntent read of order registration) -> refused /
transient / unknown.

The official client turns each error answer into an exception class by HTTP status (400/404
InvalidRequestError, 401 AuthenticationError, 403 PermissionError, 429 RateLimitError, other
statuses APIError) and carries Stripe's `error.code`. Codes are read first, then the class; any
other error, and any exception that is not a Stripe answer at all, is UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe

from refunds.gateways.answers import Answer, AnswerKind, gateway_error

REFUSED, TRANSIENT, UNKNOWN = AnswerKind.REFUSED, AnswerKind.TRANSIENT, AnswerKind.UNKNOWN


@dataclass(frozen=True)
class StripeAnswer:
    status: int  # the HTTP status Stripe sends the code with
    kind: AnswerKind
    why: str


# fmt: off
STRIPE_CODES: dict[str, StripeAnswer] = {
    "amount_too_large": StripeAnswer(400, REFUSED,
        "more than the charge has left to refund: nothing was refunded, the same amount is "
        "refused again"),
    "amount_too_small": StripeAnswer(400, REFUSED,
        "below Stripe's minimum charge amount: refused again on retry"),
    "charge_already_refunded": StripeAnswer(400, REFUSED,
        "the charge is fully refunded already: nothing is left to refund"),
    "charge_disputed": StripeAnswer(400, REFUSED,
        "the charge was disputed (charged back): Stripe will not refund it"),
    "charge_not_refundable": StripeAnswer(400, REFUSED,
        "the payment's charge cannot be refunded (e.g. it did not succeed)"),
    "payment_intent_unexpected_state": StripeAnswer(400, REFUSED,
        "the PaymentIntent is not in a state that can be refunded"),
    "resource_missing": StripeAnswer(404, REFUSED,
        "no such PaymentIntent: nothing to refund (on a lookup or a payment read the adapter "
        "answers None first)"),
    "parameter_invalid_integer": StripeAnswer(400, REFUSED,
        "the amount is not a valid integer: the same request is refused again"),
    "parameter_missing": StripeAnswer(400, REFUSED,
        "a required parameter is missing: the same request is refused again"),
    "balance_insufficient": StripeAnswer(400, TRANSIENT,
        "the account balance cannot cover the refund now: like WeChat NOT_ENOUGH, the refund "
        "waits for funds rather than fails"),
    "idempotency_key_in_use": StripeAnswer(409, TRANSIENT,
        "another request with our key is still running: Stripe did not run this one; the retry "
        "replays that request's result"),
    "rate_limit": StripeAnswer(429, TRANSIENT,
        "rate limited: Stripe did not process the request"),
    "lock_timeout": StripeAnswer(429, TRANSIENT,
        "Stripe could not lock the object in time: not processed, retry later"),
}

# Read when the code is not in STRIPE_CODES; the first class the error is an instance of wins.
STRIPE_CLASSES: tuple[tuple[type[stripe.StripeError], Answer], ...] = (
    (stripe.RateLimitError, Answer(TRANSIENT,
        "429: Stripe did not process the request")),
    (stripe.IdempotencyError, Answer(TRANSIENT,
        "our key was used with other parameters: Stripe ran nothing for this request, and the "
        "metadata lookup finds the earlier refund once the key expires")),
    (stripe.AuthenticationError, Answer(TRANSIENT,
        "401 wrong API key: a config error, retried until ops fix it (project decision)")),
    (stripe.PermissionError, Answer(TRANSIENT,
        "403 key lacks permission: a config error, retried until ops fix it (project decision)")),
    (stripe.APIConnectionError, Answer(UNKNOWN,
        "timeout, reset or refused connection: the client cannot tell whether Stripe got it")),
    (stripe.APIError, Answer(UNKNOWN,
        "5xx, other statuses or an unreadable answer: Stripe may have made the refund")),
)
# fmt: on


def error_code(exc: stripe.StripeError) -> str | None:
    """Stripe's `error.code`; the client fills `exc.code` only for 400/402/404 answers."""
    if exc.code:
        return exc.code
    return exc.error.code if exc.error is not None else None


def classify_stripe(exc: BaseException) -> AnswerKind:
    """The kind of an exception raised by a `stripe` client call."""
    if not isinstance(exc, stripe.StripeError):
        return UNKNOWN
    row = STRIPE_CODES.get(error_code(exc) or "")
    if row is not None:
        return row.kind
    for cls, answer in STRIPE_CLASSES:
        if isinstance(exc, cls):
            return answer.kind
    return UNKNOWN


def stripe_gateway_error(exc: Exception) -> Exception:
    """The domain error for a failed call, with Stripe's class and code in the message."""
    if isinstance(exc, stripe.StripeError):
        detail = error_code(exc) or exc.http_status
        message = f"stripe {type(exc).__name__} ({detail}): {exc.user_message}"
    else:
        message = f"stripe call failed: {type(exc).__name__}: {exc}"
    return gateway_error(classify_stripe(exc), message)
