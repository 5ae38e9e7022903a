"""Sign-in and sign-out. Staff paste a bearer token from the identity provider (an OIDC RS256/
ES256 token, or an HS256 one from `refunds token`); under `refunds dev` the page also offers the
demo identities as buttons. The session lasts `REFUNDS_CONSOLE_SESSION_TTL`, never longer than
the token."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import DEMO_USERS, Identity, Principal, TokenReader
from api.console.session import (
    COOKIE,
    COOKIE_PATH,
    SIGN_IN_COOKIE,
    CheckedFormDep,
    CsrfMismatch,
    CsrfRefused,
    FormDep,
    SessionsDep,
    UserDep,
    same_secret,
    secure_cookies,
)
from api.console.web import ConsoleRoute, home_of, safe_next, settings_of, sign_in_page
from api.params import NextPath
from refunds.domain.errors import Forbidden, Unauthorized

# A draft is the few fields of one console form (`session.DRAFT_LIMIT`), JSON-encoded.
DRAFT_TEXT_LIMIT = 4096

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@router.get("/sign-in")
async def sign_in_form(request: Request, next: NextPath = "") -> Response:
    """The sign-in page."""
    signed_out = request.query_params.get("signed_out") == "1"
    return sign_in_page(
        request, next_path=next, notice="You are signed out." if signed_out else None
    )


@router.post("/sign-in")
async def sign_in(request: Request, form: FormDep, sessions: SessionsDep) -> Response:
    """Open a session from a token (or a demo identity under `refunds dev`)."""
    if not form.get("csrf"):
        raise CsrfRefused("the sign-in form has no CSRF token: reload the page")
    if not same_secret(form.get("csrf"), request.cookies.get(SIGN_IN_COOKIE, "")):
        raise CsrfMismatch("the sign-in form is stale (its CSRF token does not match): reload it")
    draft = _draft(form.get("draft", ""))
    next_path = form.get("next", "")
    try:
        identity, via = await _identity(request, form)
    except Unauthorized as exc:
        return sign_in_page(
            request, status=401, next_path=next_path, draft=draft, error=exc.message
        )
    if not identity.principal.roles:
        return sign_in_page(
            request,
            status=403,
            next_path=next_path,
            draft=draft,
            error="That token carries none of the roles customer, approver, admin, ops.",
        )
    raw, row = await sessions.open(identity, via, draft)
    user = await sessions.read(raw)
    response = RedirectResponse(safe_next(next_path, home_of(user)), status_code=303)
    response.set_cookie(
        COOKIE,
        raw,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, settings_of(request)),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
async def sign_out(user: UserDep, form: CheckedFormDep, sessions: SessionsDep) -> Response:
    """End the session (the form carries its CSRF token)."""
    await sessions.close(user.id_hash)
    response = RedirectResponse("/console/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


async def _identity(request: Request, form: dict[str, str]) -> tuple[Identity, str]:
    settings = settings_of(request)
    role = form.get("demo")
    if role:
        if not settings.console_demo_sign_in or role not in DEMO_USERS:
            raise Forbidden("demo identities are offered only under `refunds dev`")
        expires = int(time.time() + settings.console_session_ttl.total_seconds())
        return Identity(Principal(DEMO_USERS[role], frozenset({role})), expires), "demo"
    token = form.get("token", "").strip().removeprefix("Bearer ").strip()
    if not token:
        raise Unauthorized("paste a token to sign in")
    reader: TokenReader = request.app.state.tokens
    # A provider's keys may have to be fetched: not on the event loop.
    identity = await asyncio.to_thread(reader.identity, token)
    return identity, "oidc" if reader.is_oidc(token) else "hs256"


def _draft(text: str) -> dict[str, Any] | None:
    if not text or len(text) > DRAFT_TEXT_LIMIT:  # bounded before it is parsed
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}
