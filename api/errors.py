"""Every error leaves the API as `{"error": {"code", "message"}}` with a stable code."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from refunds.domain.errors import ERRORS_BY_TYPE, DomainError


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def domain_error_from_temporal(err: BaseException) -> DomainError | None:
    """A workflow update rejected with a typed ApplicationError, as the domain error it names."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type in ERRORS_BY_TYPE:
            return ERRORS_BY_TYPE[cause.type](cause.message)
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.message)

    @app.exception_handler(WorkflowUpdateFailedError)
    async def _update(_: Request, exc: WorkflowUpdateFailedError) -> JSONResponse:
        domain = domain_error_from_temporal(exc)
        if domain is None:
            return error_response(500, "workflow_update_failed", "the refund workflow failed")
        return error_response(domain.http_status, domain.code, domain.message)

    @app.exception_handler(RPCError)
    async def _temporal_down(_: Request, exc: RPCError) -> JSONResponse:
        return error_response(
            503,
            "workflow_service_unavailable",
            f"the workflow service did not answer: {exc.status.name}",
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "validation_error", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        return error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
        )
