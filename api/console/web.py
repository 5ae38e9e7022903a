"""Rendering of the console's pages, and the route class that turns every failure into a page a
person can act on (sign in again, a 403 with its reason, a 404) instead of JSON."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from temporalio.service import RPCError

from api.auth import DEMO_USERS
from api.console import format as fmt
from api.console.session import (
    SIGN_IN_COOKIE,
    ConsoleUser,
    SignInRequired,
    draft_of,
    read_form,
    secure_cookies,
)
from refunds.domain.errors import DomainError
from refunds.settings import Settings

log = logging.getLogger("refunds.console")

HERE = Path(__file__).resolve().parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals.update(
    money=fmt.money, duration=fmt.duration, timestamp=fmt.timestamp, quote=quote
)
# The live script polls this often for changes (a small JSON answer).
POLL_MILLISECONDS = 2000


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def home_of(user: ConsoleUser | None) -> str:
    if user is None:
        return "/console/sign-in"
    if user.principal.has("approver", "admin"):
        return "/console/inbox"
    if user.principal.has("ops"):
        return "/console/ops"
    return "/console/my-refunds"


def safe_next(target: str | None, fallback: str = "/console") -> str:
    """Only a path of this console: a sign-in link must never send anyone elsewhere."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
        return fallback
    if target.startswith("//") or "\\" in target:
        return fallback
    return target


def render(
    request: Request,
    name: str,
    *,
    status: int = 200,
    user: ConsoleUser | None = None,
    **context: Any,
) -> HTMLResponse:
    user = user or getattr(request.state, "console_user", None)
    settings = settings_of(request)
    values: dict[str, Any] = {
        "request": request,
        "user": user,
        "path": request.url.path,
        "now": datetime.now(UTC),
        "poll_ms": POLL_MILLISECONDS,
        "demo_sign_in": settings.console_demo_sign_in,
        "flash": user.flash if user else None,
        "draft": user.draft if user else None,
    }
    html = templates.get_template(name).render({**values, **context})
    response = HTMLResponse(html, status_code=status)
    # Pages hold money and names: never cached. The security headers (CSP, never framed,
    # nosniff, referrer) are `api.middleware.ConsoleHeaders`', on every console answer.
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, code=code, message=message)


def sign_in_page(
    request: Request,
    *,
    status: int = 200,
    next_path: str = "",
    draft: dict[str, Any] | None = None,
    notice: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    """The sign-in form with a fresh double-submit CSRF token (its cookie lives 30 minutes)."""
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        status=status,
        csrf=token,
        next_path=safe_next(next_path, ""),
        draft_json=json.dumps(draft) if draft else "",
        draft=draft,
        notice=notice,
        error=error,
        demo_users=DEMO_USERS,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=1800,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, settings_of(request)),
    )
    return response


async def sign_in_again(request: Request, exc: SignInRequired) -> Response:
    """A page asks for sign-in by redirect; a form post shows sign-in at once, carrying what the
    person typed so that it is back in its form after they sign in."""
    notice = "Your session has expired: sign in again." if exc.expired else None
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/sign-in?next={quote(here)}", status_code=303)
    try:
        form = await read_form(request)
    except DomainError:
        form = {}
    draft = draft_of(form)
    if draft:
        notice = (notice or "Sign in to continue.") + " What you typed is kept for you."
    back = form.get("return_to") or urlsplit(request.headers.get("referer", "")).path
    return sign_in_page(request, status=401, next_path=back, draft=draft, notice=notice)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """Console routes answer HTML: errors become pages, an absent session becomes sign-in."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                return await sign_in_again(request, exc)
            except DomainError as exc:
                return error_page(request, exc.http_status, exc.code, exc.message)
            except RequestValidationError as exc:
                first: dict[str, Any] = next(iter(exc.errors()), {})
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                message = f"{where}: {first.get('msg', 'invalid')}"
                return error_page(request, 422, "validation_error", message)
            except RPCError as exc:
                log.warning("console_temporal_unavailable", extra={"status": exc.status.name})
                return error_page(
                    request,
                    503,
                    "workflow_service_unavailable",
                    "The workflow service did not answer: nothing was changed. Try again.",
                )

        return console_handler
