"""One case per row of the Stripe answer table, each an error answer turned into an exception by
the official client's own status -> class mapping, then read by the adapter's classifier."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from stripe._api_requestor import _APIRequestor

from refunds.domain.errors import GatewayPermanentError, GatewayTransientError, GatewayUnknownError
from refunds.gateways.answers import AnswerKind
from refunds.gateways.stripe_answers import (
    STRIPE_CLASSES,
    STRIPE_CODES,
    StripeAnswer,
    classify_stripe,
    stripe_gateway_error,
)

ERRORS_BY_KIND: dict[AnswerKind, type[Exception]] = {
    AnswerKind.REFUSED: GatewayPermanentError,
    AnswerKind.TRANSIENT: GatewayTransientError,
    AnswerKind.UNKNOWN: GatewayUnknownError,
}


def client_error(status: int, error: dict[str, Any]) -> stripe.StripeError:
    """What `stripe` raises for an answer `status` with body `{"error": error}`."""
    body = {"error": {"message": "from the table test", **error}}
    with pytest.raises(stripe.StripeError) as raised:
        _APIRequestor._global_instance().handle_error_response(
            json.dumps(body), status, body, {}, "V1"
        )
    return raised.value


def assert_read_as(exc: Exception, kind: AnswerKind) -> None:
    assert classify_stripe(exc) == kind
    # Exactly this class: an unknown answer must not pass for a plain transient one, and back.
    assert type(stripe_gateway_error(exc)) is ERRORS_BY_KIND[kind]


@pytest.mark.parametrize(("code", "row"), STRIPE_CODES.items(), ids=list(STRIPE_CODES))
def test_each_stripe_code_is_read_as_its_table_row(code: str, row: StripeAnswer) -> None:
    exc = client_error(row.status, {"type": "invalid_request_error", "code": code})
    assert_read_as(exc, row.kind)
    assert code in str(stripe_gateway_error(exc))


# An answer of each class the table names, as the client builds it.
CLASS_SAMPLES: dict[type[stripe.StripeError], Callable[[], stripe.StripeError]] = {
    stripe.RateLimitError: lambda: client_error(429, {"type": "invalid_request_error"}),
    stripe.IdempotencyError: lambda: client_error(400, {"type": "idempotency_error"}),
    stripe.AuthenticationError: lambda: client_error(401, {"type": "invalid_request_error"}),
    stripe.PermissionError: lambda: client_error(403, {"type": "invalid_request_error"}),
    stripe.APIConnectionError: lambda: stripe.APIConnectionError("Request timed out"),
    stripe.APIError: lambda: client_error(500, {"type": "api_error"}),
}


@pytest.mark.parametrize(
    ("cls", "kind"),
    [(cls, answer.kind) for cls, answer in STRIPE_CLASSES],
    ids=[cls.__name__ for cls, _ in STRIPE_CLASSES],
)
def test_each_stripe_error_class_is_read_as_its_table_row(
    cls: type[stripe.StripeError], kind: AnswerKind
) -> None:
    exc = CLASS_SAMPLES[cls]()
    assert type(exc) is cls
    assert_read_as(exc, kind)


def test_idempotency_key_in_use_comes_as_api_error_and_is_read_by_its_code() -> None:
    # 409 maps to APIError (unknown) in the client; the code says Stripe ran nothing.
    exc = client_error(409, {"type": "invalid_request_error", "code": "idempotency_key_in_use"})
    assert type(exc) is stripe.APIError and exc.code is None
    assert_read_as(exc, AnswerKind.TRANSIENT)


@pytest.mark.parametrize(
    "exc",
    [
        client_error(400, {"type": "invalid_request_error", "code": "some_new_code"}),
        client_error(400, {"type": "invalid_request_error"}),
        client_error(402, {"type": "card_error", "code": "card_declined"}),
        client_error(503, {"type": "api_error", "code": "amount_too_large_but_5xx"}),
        ValueError("Invalid response body from API"),
        KeyError("amount"),
    ],
    ids=["unknown-code", "no-code", "card-error", "5xx", "not-stripe", "unreadable"],
)
def test_answers_the_table_does_not_name_are_unknown(exc: Exception) -> None:
    assert_read_as(exc, AnswerKind.UNKNOWN)
