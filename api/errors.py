"""Every error leaves the API as `{"error": {"type", "code", "message", "param"}}`, mapped here.

`code` is stable and specific (`refund_exceeds_refundable`); `type` is one of a small set derived
from the HTTP status, so a client can branch on the kind of failure without knowing every code;
`param` names the field at fault (`amount`, `items.0.sku`) or is null.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from refunds.domain.errors import (
    ERRORS_BY_TYPE,
    CurrencyMismatch,
    DomainError,
    InvalidRefundItems,
    InvalidRefundNo,
    PaidAmountExceedsCaptured,
    PaymentCurrencyMismatch,
    PaymentNotFound,
    PaymentNotSucceeded,
    PaymentRefInUse,
    PaymentRefRequired,
)


class ErrorType(StrEnum):
    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    CONFLICT = "conflict_error"
    API = "api_error"


class ErrorDetail(BaseModel):
    type: ErrorType
    code: str = Field(examples=["refund_exceeds_refundable"])
    message: str
    param: str | None = Field(
        description="The request field at fault (`amount`, `items.0.sku`), or null."
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


# Domain errors that are about one field of the request body.
PARAMS: dict[type[DomainError], str] = {
    InvalidRefundNo: "refund_no",
    CurrencyMismatch: "currency",
    InvalidRefundItems: "items",
    PaymentRefRequired: "payment_ref",
    PaymentRefInUse: "payment_ref",
    PaymentNotFound: "payment_ref",
    PaymentNotSucceeded: "payment_ref",
    PaymentCurrencyMismatch: "currency",
    PaidAmountExceedsCaptured: "paid_amount",
}

HTTP_CODES = {
    400: "malformed_body",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    414: "query_too_long",
}

DESCRIPTIONS = {
    400: "A body that cannot be read (`malformed_body`)",
    401: "Missing or invalid bearer token",
    403: "The caller's roles do not allow this",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state",
    413: "Request body over the size limit (`request_too_large`)",
    414: "Query string over the size limit (`query_too_long`)",
    422: "Invalid request (`validation_error` or a specific code)",
    503: "The workflow service, or a gateway asked through it, did not answer",
}


def error_type(status: int) -> ErrorType:
    if status >= 500:
        return ErrorType.API
    return {
        401: ErrorType.AUTHENTICATION,
        403: ErrorType.PERMISSION,
        404: ErrorType.NOT_FOUND,
        409: ErrorType.CONFLICT,
    }.get(status, ErrorType.INVALID_REQUEST)


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    detail = ErrorDetail(type=error_type(status), code=code, message=message, param=param)
    return {"error": detail.model_dump(mode="json")}


def error_response(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, param), status_code=status)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each error status it can answer, with the error shape."""
    return {s: {"model": ErrorOut, "description": DESCRIPTIONS[s]} for s in statuses}


def domain_error_from_temporal(err: BaseException) -> DomainError | None:
    """A workflow update rejected with a typed ApplicationError, as the domain error it names."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type in ERRORS_BY_TYPE:
            return ERRORS_BY_TYPE[cause.type](cause.message)
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return None


def domain_response(exc: DomainError) -> JSONResponse:
    param = getattr(exc, "param", None) or PARAMS.get(type(exc))
    return error_response(exc.http_status, exc.code, exc.message, param)


def validation_param(loc: Sequence[Any]) -> str | None:
    """`("body", "items", 0, "sku")` → `items.0.sku`; the body as a whole → null."""
    where = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    return ".".join(str(p) for p in where) or None


def validation_response(errors: Iterable[Any]) -> JSONResponse:
    first: dict[str, Any] = next(iter(errors), {})
    loc = tuple(first.get("loc", ()))
    # A body that is not JSON at all is located at a character offset, not at a field.
    param = None if first.get("type") == "json_invalid" else validation_param(loc)
    message = f"{param}: {first.get('msg', 'invalid')}" if param else first.get("msg", "invalid")
    return error_response(422, "validation_error", message, param)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return domain_response(exc)

    @app.exception_handler(WorkflowUpdateFailedError)
    async def _update(_: Request, exc: WorkflowUpdateFailedError) -> JSONResponse:
        domain = domain_error_from_temporal(exc)
        if domain is None:
            return error_response(500, "workflow_update_failed", "the refund workflow failed")
        return domain_response(domain)

    @app.exception_handler(RPCError)
    async def _temporal_down(_: Request, exc: RPCError) -> JSONResponse:
        return error_response(
            503,
            "workflow_service_unavailable",
            f"the workflow service did not answer: {exc.status.name}",
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        response = error_response(
            exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})
        return response
