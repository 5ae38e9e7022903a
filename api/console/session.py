"""The console's server-side sessions and CSRF fence (issue 12).

The cookie carries a random session id (HttpOnly, SameSite=Strict, Secure over HTTPS, path
`/console`, so the JSON API never sees it and stays bearer-only); PostgreSQL keeps its SHA-256,
the person, their roles, a CSRF token and the expiry. A session never outlives the token it was
opened with. Every POST carries the session's CSRF token in a form field; the sign-in form, which
has no session yet, carries one that must equal a short-lived cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Identity, Principal
from refunds.db.console import ConsoleSessionRepository
from refunds.db.models import ConsoleSession
from refunds.domain.errors import DomainError
from refunds.settings import Settings

COOKIE = "refunds_console"
SIGN_IN_COOKIE = "refunds_console_sign_in"
COOKIE_PATH = "/console"
# What a draft may hold: a note and a choice, not a file.
DRAFT_LIMIT = 4096


class SignInRequired(Exception):
    """No session, or an expired one: back to sign-in (a POST keeps what was typed)."""

    def __init__(self, expired: bool) -> None:
        super().__init__("sign in required")
        self.expired = expired


class CsrfRefused(DomainError):
    code = "csrf_token_missing"
    http_status = 403


class CsrfMismatch(CsrfRefused):
    code = "csrf_token_invalid"


class NotAForm(DomainError):
    code = "form_expected"
    http_status = 415


class FormTooLarge(DomainError):
    """A console form with more fields, or a longer field, than any of its forms has."""

    code = "form_field_too_long"
    http_status = 422


# The console's largest form has a dozen fields; its longest field is a pasted bearer token
# (a provider's JWT with many claims runs to a few KB). A note is bounded again, to 500
# characters, with a message the person can act on.
FORM_FIELDS_LIMIT = 32
FORM_VALUE_LIMIT = 16384


@dataclass(frozen=True)
class ConsoleUser:
    principal: Principal
    id_hash: str
    csrf: str
    via: str
    expires_at: datetime
    draft: dict[str, Any] | None
    flash: dict[str, Any] | None


def hash_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Secure wherever the console is reached over HTTPS (directly or behind a proxy that the
    public URL names); plain HTTP only on a developer's machine."""
    return request.url.scheme == "https" or settings.api_url.startswith("https://")


class Sessions:
    """Each call is its own short transaction, apart from the request's read session."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings

    async def open(
        self, identity: Identity, via: str, draft: dict[str, Any] | None
    ) -> tuple[str, ConsoleSession]:
        now = datetime.now(UTC)
        token_end = datetime.fromtimestamp(identity.expires_at, UTC)
        raw = secrets.token_urlsafe(32)
        row = ConsoleSession(
            id_hash=hash_id(raw),
            sub=identity.principal.id,
            roles=sorted(identity.principal.roles),
            via=via,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=min(now + self.settings.console_session_ttl, token_end),
            draft=draft,
        )
        async with self.sessionmaker.begin() as session:
            repo = ConsoleSessionRepository(session)
            await repo.purge_expired(now)
            repo.add(row)
        return raw, row

    async def read(self, raw: str) -> ConsoleUser | None:
        async with self.sessionmaker() as session:
            row = await ConsoleSessionRepository(session).find(hash_id(raw), datetime.now(UTC))
            if row is None:
                return None
            principal = Principal(id=row.sub, roles=frozenset(row.roles))
            return ConsoleUser(
                principal,
                row.id_hash,
                row.csrf_token,
                row.via,
                row.expires_at,
                row.draft,
                row.flash,
            )

    async def close(self, id_hash: str) -> None:
        async with self.sessionmaker.begin() as session:
            await ConsoleSessionRepository(session).delete(id_hash)

    async def flash(self, user: ConsoleUser, kind: str, text: str, **extra: Any) -> None:
        await self._set(user, flash={"kind": kind, "text": text, **extra})

    async def keep_draft(self, user: ConsoleUser, draft: dict[str, Any]) -> None:
        await self._set(user, draft=draft)

    async def taken(self, user: ConsoleUser) -> None:
        """The flash and the draft are shown once."""
        if user.flash is not None or user.draft is not None:
            await self._set(user, flash=None, draft=None)

    async def _set(self, user: ConsoleUser, **values: Any) -> None:
        async with self.sessionmaker.begin() as session:
            await ConsoleSessionRepository(session).set(user.id_hash, **values)


async def get_sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


SessionsDep = Annotated[Sessions, Depends(get_sessions)]


async def current_user(request: Request, sessions: SessionsDep) -> ConsoleUser:
    raw = request.cookies.get(COOKIE)
    user = await sessions.read(raw) if raw else None
    if user is None:
        raise SignInRequired(expired=raw is not None)
    request.state.console_user = user
    return user


async def read_form(request: Request) -> dict[str, str]:
    """An HTML form's fields (urlencoded; the console's forms upload no files)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise NotAForm("the console takes HTML form posts (application/x-www-form-urlencoded)")
    body = (await request.body()).decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=FORM_FIELDS_LIMIT)
    except ValueError as exc:  # more fields than the limit
        raise FormTooLarge(f"a console form has at most {FORM_FIELDS_LIMIT} fields") from exc
    for name, value in pairs:
        if len(name) > 64 or len(value) > FORM_VALUE_LIMIT:
            raise FormTooLarge(f"a form field is over {FORM_VALUE_LIMIT} characters")
        fields.setdefault(name, value)
    return fields


UserDep = Annotated[ConsoleUser, Depends(current_user)]
FormDep = Annotated[dict[str, str], Depends(read_form)]


async def checked_form(user: UserDep, form: FormDep) -> dict[str, str]:
    """The form of a signed-in person, refused unless it carries their session's CSRF token."""
    token = form.get("csrf")
    if not token:
        raise CsrfRefused("this form has no CSRF token: reload the page and submit it again")
    if not same_secret(token, user.csrf):
        raise CsrfMismatch("this form's CSRF token is not your session's: reload the page")
    return form


CheckedFormDep = Annotated[dict[str, str], Depends(checked_form)]


def draft_of(form: dict[str, str]) -> dict[str, Any] | None:
    """What a person typed into a console form, kept across an expired session."""
    if not form.get("form_id"):
        return None
    fields = {k: v for k, v in form.items() if k not in ("csrf", "draft", "token")}
    if len(repr(fields)) > DRAFT_LIMIT:
        return None
    return fields
