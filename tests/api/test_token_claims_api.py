"""Bearer tokens through the real API: a token that never expires is refused, and `iss` / `aud`
are checked when REFUNDS_JWT_ISSUER / REFUNDS_JWT_AUDIENCE are set."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from api.auth import issue_token
from tests.factories import uid
from tests.stack import Stack

ISSUER, AUDIENCE = "https://shop.example", "refunds-api"


def token(stack: Stack, **claims: Any) -> dict[str, str]:
    assert stack.settings.jwt_secret is not None
    body = {"sub": uid("admin"), "roles": ["admin"], "exp": int(time.time()) + 600, **claims}
    body = {key: value for key, value in body.items() if value is not None}
    return {"Authorization": f"Bearer {jwt.encode(body, stack.settings.jwt_secret)}"}


def status(api_url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    response = httpx.get(f"{api_url}/v1/refunds", headers=headers, timeout=30)
    error = response.json().get("error") if response.status_code != 200 else None
    return response.status_code, error["code"] if error else None


@pytest.fixture(scope="module")
def checking_api(stack: Stack) -> str:
    """Another API on the same stack, with an issuer and an audience configured."""
    settings = stack.settings.model_copy(update={"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE})
    return stack.api(settings)


def test_a_token_without_exp_is_401(stack: Stack) -> None:
    assert status(stack.api_url, token(stack)) == (200, None)
    assert status(stack.api_url, token(stack, exp=None)) == (401, "unauthorized")


def test_without_issuer_and_audience_settings_a_token_with_aud_is_401(stack: Stack) -> None:
    """PyJWT refuses an audience nobody asked to check rather than ignore it."""
    assert status(stack.api_url, token(stack, aud=AUDIENCE)) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"iss": ISSUER, "aud": AUDIENCE}, 200),
        ({"iss": ISSUER, "aud": [AUDIENCE, "other-api"]}, 200),
        ({"iss": "https://evil.example", "aud": AUDIENCE}, 401),
        ({"iss": ISSUER, "aud": "other-api"}, 401),
        ({"aud": AUDIENCE}, 401),
        ({"iss": ISSUER}, 401),
        ({"iss": ISSUER, "aud": AUDIENCE, "exp": None}, 401),
    ],
)
def test_issuer_and_audience_are_checked_when_set(
    stack: Stack, checking_api: str, claims: dict[str, Any], expected: int
) -> None:
    assert status(checking_api, token(stack, **claims))[0] == expected


def test_issued_tokens_carry_the_configured_issuer_and_audience(
    stack: Stack, checking_api: str
) -> None:
    assert stack.settings.jwt_secret is not None
    signed = issue_token(
        stack.settings.jwt_secret, uid("ops"), ["ops"], issuer=ISSUER, audience=AUDIENCE
    )
    assert status(checking_api, {"Authorization": f"Bearer {signed}"}) == (200, None)
    assert status(stack.api_url, {"Authorization": f"Bearer {signed}"})[0] == 401
