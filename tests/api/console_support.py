"""Helpers the console's tests share: a console API on the stack (its own settings), signing in
over plain HTTP, reading a form's CSRF token, and expiring a session as time would."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.console.session import COOKIE, hash_id
from tests.stack import Stack

TEMPORAL_UI = "http://127.0.0.1:8233"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_api(stack: Stack, **settings: Any) -> str:
    """Another API on the stack, as `refunds dev` runs it: demo sign-in, a Temporal UI link."""
    update = {
        "temporal_ui_url": TEMPORAL_UI,
        "console_demo_sign_in": True,
        "console_session_ttl": timedelta(hours=1),
        **settings,
    }
    return stack.api(stack.settings.model_copy(update=update))


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


def bearer(stack: Stack, sub: str, *roles: str) -> str:
    return stack.token(sub, *roles)["Authorization"].removeprefix("Bearer ")


async def sign_in(http: httpx.AsyncClient, token: str, **fields: str) -> httpx.Response:
    """The sign-in form as a browser posts it: its CSRF token, its double-submit cookie."""
    page = await http.get("/console/sign-in", params={"next": fields.pop("next", "")})
    assert page.status_code == 200, page.text
    form = {"csrf": csrf_of(page.text), "token": token, **fields}
    if "next" not in form:
        form["next"] = str(page.url.params.get("next", ""))
    return await http.post("/console/sign-in", data=form)


async def signed_in(api_url: str, token: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=api_url, timeout=60)
    response = await sign_in(http, token)
    assert response.status_code == 303, response.text
    return http


def session_cookie(http: httpx.AsyncClient) -> str:
    raw = http.cookies.get(COOKIE, path="/console")
    assert raw
    return raw


async def expire(sessionmaker: async_sessionmaker[AsyncSession], raw: str) -> None:
    """The session's time runs out (what REFUNDS_CONSOLE_SESSION_TTL does, without the wait)."""
    async with sessionmaker.begin() as session:
        await session.execute(
            text(
                "UPDATE console_sessions SET expires_at = now() - interval '1 second' "
                "WHERE id_hash = :h"
            ),
            {"h": hash_id(raw)},
        )
