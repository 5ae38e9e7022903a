"""The console's security headers on every answer under /console (pages, error pages, redirects,
the live JSON, the static files), and templates the policy can hold: no inline script, no inline
handler, no inline style, no `javascript:` URL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from api.console.web import HERE
from tests.api.console_support import bearer, console_api, signed_in
from tests.factories import uid
from tests.stack import Stack

TEMPLATES = sorted((HERE / "templates").glob("*.html"))
EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def directives(policy: str) -> dict[str, str]:
    pairs = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {name: value for name, value in pairs}


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    return console_api(stack)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/console/sign-in", 200),
        ("/console/inbox", 200),
        ("/console/ops", 200),
        ("/console/refunds/rf_none", 404),
        ("/console/inbox?min_amount=1e999996", 422),
        ("/console", 303),
        ("/console/live", 200),
        ("/console/static/console.js", 200),
        ("/console/static/console.css", 200),
    ],
)
async def test_every_console_answer_carries_the_security_headers(
    stack: Stack, console_url: str, path: str, status: int
) -> None:
    http = await signed_in(console_url, bearer(stack, uid("staff"), "admin", "ops"))
    try:
        response = await http.get(path, follow_redirects=False)
    finally:
        await http.aclose()
    assert response.status_code == status
    assert {name: response.headers.get(name) for name in EXPECTED} == EXPECTED
    policy = directives(response.headers["content-security-policy"])
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]


async def test_the_api_outside_the_console_keeps_its_own_headers(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
        response = await http.get("/healthz")
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_no_template_holds_inline_script_handler_or_style(template: Path) -> None:
    text = template.read_text()
    scripts = re.findall(r"<script\b[^>]*>", text, flags=re.I)
    assert all(re.search(r"\bsrc=", tag) for tag in scripts), scripts
    assert not re.search(r"\son[a-z]+\s*=", text, flags=re.I)
    assert not re.search(r"<style\b|\sstyle\s*=", text, flags=re.I)
    assert "javascript:" not in text.lower()
