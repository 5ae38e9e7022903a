"""Stripe-shaped error bodies: `{"error": {"type", "code", "message", "param"}}` + HTTP status."""

from __future__ import annotations

from typing import Any


class StripeAPIError(Exception):
    """Raised anywhere in the sandbox; the app turns it into Stripe's error JSON."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}

    @classmethod
    def invalid(
        cls, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> StripeAPIError:
        return cls(status, "invalid_request_error", message, code, param)

    @classmethod
    def missing(cls, kind: str, ident: str, param: str | None = None) -> StripeAPIError:
        """Unknown id: 404 in a URL path, 400 when it came in as a parameter (as Stripe does)."""
        status = 400 if param else 404
        return cls(
            status,
            "invalid_request_error",
            f"No such {kind}: '{ident}'",
            "resource_missing",
            param or "id",
        )

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}
