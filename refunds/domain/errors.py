"""Domain errors: a stable `code` for clients, an HTTP status, and the Temporal error type.

Activities raise these; they cross Temporal as non-retryable `ApplicationError`s whose `type` is
the class name, and the API maps them back by that name in one place.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class OrderNotFound(NotFound):
    code = "order_not_found"


class RefundNotFound(NotFound):
    code = "refund_not_found"


class ReconciliationNotFound(NotFound):
    code = "reconciliation_not_found"


class Conflict(DomainError):
    code = "conflict"
    http_status = 409


class OrderConflict(Conflict):
    code = "order_conflict"


class OrderNotPaid(Conflict):
    code = "order_not_paid"


class RefundExceedsPaid(Conflict):
    code = "refund_exceeds_refundable"


class RefundConflict(Conflict):
    code = "refund_conflict"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"
    http_status = 422


class InvalidRefundItems(DomainError):
    code = "invalid_refund_items"
    http_status = 422


class RefundNotPendingApproval(Conflict):
    code = "refund_not_pending_approval"


class RefundNotAbnormal(Conflict):
    code = "refund_not_abnormal"


class GatewayReportedSuccess(Conflict):
    """Ops may not resolve `failed` what the gateway says it paid back: the money went out."""

    code = "gateway_reported_success"


class GatewayRefundPending(Conflict):
    """Ops may not resolve `failed` while the gateway still holds the refund unfinished (Stripe
    `pending`/`requires_action`, WeChat `PROCESSING`/`ABNORMAL`): it may still pay it out, and the
    released amount could then be refunded twice."""

    code = "gateway_refund_pending"


class GatewayUnconfirmed(DomainError):
    """Resolving `failed` needs the gateway's word that it is not paying; it could not be asked
    just now. Nothing changed: try again."""

    code = "gateway_unconfirmed"
    http_status = 503


class GatewayAnswerUnverified(DomainError):
    """A gateway answer that reached the refund's workflow without being recorded by a verified
    path (a webhook the API verified, the gateway activities' own calls): never acted on."""

    code = "gateway_answer_unverified"
    http_status = 409


class DecisionNotAuthentic(DomainError):
    """A decision the refund's workflow did not get from the API (unsigned, or signed with a key
    the worker does not hold): only the API knows who decides."""

    code = "decision_not_authentic"
    http_status = 403


class InvalidRefundNo(DomainError):
    code = "invalid_refund_no"
    http_status = 422


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable_refund_first"


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class EventNotFound(NotFound):
    code = "event_not_found"


class WebhookTargetRefused(DomainError):
    """A webhook URL that is not http(s), or that resolves to a loopback, private, link-local,
    reserved or multicast address (SSRF), unless REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS."""

    code = "webhook_target_refused"
    http_status = 422


class PayloadNotDecodable(DomainError):
    """A codec server request whose body is not Temporal's `{"payloads": [...]}`, or a payload
    sealed with a key this API does not hold (or tampered with)."""

    code = "payload_not_decodable"
    http_status = 400


class Unauthorized(DomainError):
    code = "unauthorized"
    http_status = 401


class Forbidden(DomainError):
    code = "forbidden"
    http_status = 403


class ApproverIsRequester(DomainError):
    code = "approver_is_requester"
    http_status = 403


class PaymentRefRequired(DomainError):
    code = "payment_ref_required"
    http_status = 422


class PaymentRefInUse(Conflict):
    """Another order of the channel is registered on this payment: both would refund it."""

    code = "payment_ref_in_use"


class PaymentNotFound(DomainError):
    code = "payment_not_found"
    http_status = 422


class PaymentNotSucceeded(Conflict):
    """The payment exists but is not paid (yet, or any more): an order on it is not paid."""

    code = "payment_not_succeeded"


class PaymentCurrencyMismatch(DomainError):
    code = "payment_currency_mismatch"
    http_status = 422


class PaidAmountExceedsCaptured(DomainError):
    code = "paid_amount_exceeds_captured"
    http_status = 422


class GatewayUnavailable(DomainError):
    """The gateway could not be asked in time: nothing was decided, the caller may retry."""

    code = "gateway_unavailable"
    http_status = 503


class GatewayPermanentError(DomainError):
    """The gateway refused for good (amount invalid, payment not refundable)."""

    code = "gateway_refused"
    http_status = 502


class GatewayTransientError(Exception):
    """Network, 5xx or rate limit: retried by the activity's retry policy."""


class GatewayUnknownError(GatewayTransientError):
    """The request may have reached the gateway and we cannot tell what it did (a timeout, an
    answer we could not read or verify). Retried: the lookup-first create makes that safe."""


ERRORS_BY_TYPE: dict[str, type[DomainError]] = {}


def _register(cls: type[DomainError]) -> None:
    ERRORS_BY_TYPE[cls.__name__] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(DomainError)

# Business errors that a retry cannot fix: named in every RetryPolicy.
NON_RETRYABLE_TYPES: list[str] = sorted(ERRORS_BY_TYPE)
