"""Tokens of an external OpenID Connect provider (issue 12), through the real API: a JWKS served
over HTTP by this test (an RSA and an EC key made here), RS256 and ES256 accepted with the
configured issuer and audience, roles read from the configured claim; everything else is 401;
today's HS256 tokens keep working beside them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.auth import issue_token
from refunds.settings import Settings
from tests.api.console_support import console_api, sign_in
from tests.factories import Shop, uid
from tests.stack import Stack

ISSUER, AUDIENCE = "https://id.shop.example/realms/staff", "refunds-console"
ROLES_CLAIM = "realm_access.roles"


class Provider:
    """The provider's keys: the public half served as a JWKS, the private half signs here."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches = 0

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }

    def token(
        self, alg: str = "RS256", *, key: Any = None, kid: str | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": uid("staff"),
            "iat": now,
            "exp": now + 300,
            "realm_access": {"roles": ["approver", "offline_access"]},
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        signing = key or (self.rsa if alg == "RS256" else self.ec)
        kid = kid or ("rsa-1" if alg == "RS256" else "ec-1")
        return jwt.encode(body, signing, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, str]]:
    keys = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            keys.fetches += 1
            body = json.dumps(keys.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield keys, f"http://127.0.0.1:{server.server_address[1]}/protocol/openid-connect/certs"
    server.shutdown()


@pytest.fixture(scope="module")
def oidc_api(stack: Stack, provider: tuple[Provider, str]) -> str:
    return console_api(
        stack,
        oidc_jwks_url=provider[1],
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_roles_claim=ROLES_CLAIM,
    )


def listed(api_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{api_url}/v1/refunds", headers=headers, timeout=30).status_code


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_provider_token_is_accepted(
    oidc_api: str, provider: tuple[Provider, str], alg: str
) -> None:
    assert listed(oidc_api, provider[0].token(alg)) == 200


def test_roles_come_from_the_configured_claim(
    oidc_api: str, provider: tuple[Provider, str]
) -> None:
    keys = provider[0]
    customer = keys.token(realm_access={"roles": ["customer"]})
    assert listed(oidc_api, customer) == 403  # a customer may not list refunds
    flat = keys.token(roles=["admin"], realm_access=None)
    assert listed(oidc_api, flat) == 403  # `roles` is not the claim this provider uses


@pytest.mark.parametrize(
    "case",
    [
        "wrong_issuer",
        "wrong_audience",
        "expired",
        "no_exp",
        "no_sub",
        "unknown_kid",
        "signed_by_another_key",
        "hs256_with_the_public_key",
        "alg_none",
    ],
)
def test_other_tokens_are_401(
    stack: Stack, oidc_api: str, provider: tuple[Provider, str], case: str
) -> None:
    keys = provider[0]
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = {
        "wrong_issuer": lambda: keys.token(iss="https://evil.example"),
        "wrong_audience": lambda: keys.token(aud="another-app"),
        "expired": lambda: keys.token(exp=int(time.time()) - 120),
        "no_exp": lambda: keys.token(exp=None),
        "no_sub": lambda: keys.token(sub=None),
        "unknown_kid": lambda: keys.token(kid="rotated-away"),
        "signed_by_another_key": lambda: keys.token(key=keys.stranger),
        # The classic confusion: the provider's public key used as an HMAC secret.
        "hs256_with_the_public_key": lambda: _hs256_with(public_pem),
        "alg_none": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60},
            "",
            algorithm="none",
        ),
    }[case]()
    assert listed(oidc_api, token) == 401


def _hs256_with(secret: bytes) -> str:
    """PyJWT refuses to sign HS256 with a PEM; a forger would not: sign by hand."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
    payload = b64(json.dumps({**claims, "realm_access": {"roles": ["admin"]}}).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_hs256_tokens_keep_working_beside_the_provider(stack: Stack, oidc_api: str) -> None:
    token = stack.token(uid("ops"), "ops")["Authorization"].removeprefix("Bearer ")
    assert listed(oidc_api, token) == 200


def test_without_a_jwks_url_provider_tokens_are_401(
    stack: Stack, provider: tuple[Provider, str]
) -> None:
    assert listed(stack.api_url, provider[0].token()) == 401


async def test_the_console_signs_in_with_a_provider_token(
    oidc_api: str, provider: tuple[Provider, str]
) -> None:
    sub = uid("approver")
    async with httpx.AsyncClient(base_url=oidc_api, timeout=60) as http:
        response = await sign_in(http, provider[0].token("ES256", sub=sub))
        assert response.status_code == 303
        inbox = await http.get("/console/inbox")
        assert inbox.status_code == 200
        assert f"{ISSUER}|{sub}" in inbox.text and "signed in via oidc" in inbox.text


def test_a_jwks_url_needs_an_issuer_and_an_audience(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="REFUNDS_OIDC_ISSUER and REFUNDS_OIDC_AUDIENCE"):
        Settings(data_dir=tmp_path, oidc_jwks_url="https://id.example/certs")


# ---- principals: the provider's `sub` X and an HS256 token's `sub` X are two people ----------


def provider_bearer(keys: Provider, sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.token(sub=sub, realm_access={'roles': list(roles)})}"}


async def test_a_provider_approver_is_not_the_hs256_requester_of_the_same_sub(
    stack: Stack, oidc_api: str, provider: tuple[Provider, str]
) -> None:
    """Four eyes compares principal ids: the HS256 admin X and the provider's X are two people,
    so the provider's X may approve; the provider's X may not approve their own request."""
    sub = uid("staff")
    async with httpx.AsyncClient(base_url=oidc_api, timeout=60) as http:
        shop = Shop.open(stack, http)
        shop.admin = stack.token(sub, "admin")
        order = await shop.order(amount=3000)
        by_hs256 = await shop.refund(order, 1000, as_=shop.admin)
        assert by_hs256["requested_by"] == sub
        approver = provider_bearer(provider[0], sub, "approver", "admin")
        approved = await shop.approve(by_hs256["refund_no"], approver)
        assert approved.status_code == 200, approved.text
        assert approved.json()["approved_by"] == f"{ISSUER}|{sub}"

        own = await shop.refund(order, 1000, as_=approver)
        assert own["requested_by"] == f"{ISSUER}|{sub}"
        refused = await shop.approve(own["refund_no"], approver)
        assert refused.status_code == 403, refused.text
        assert (await shop.get_refund(own["refund_no"]))["status"] == "pending_approval"
        # The HS256 X is another person for this refund too: four eyes let them approve it.
        assert (await shop.approve(own["refund_no"], shop.admin)).status_code == 200
        done = await shop.wait_status(own["refund_no"], "succeeded")
        assert (done["requested_by"], done["approved_by"]) == (f"{ISSUER}|{sub}", sub)


def test_an_hs256_token_cannot_name_a_provider_s_principal(stack: Stack, oidc_api: str) -> None:
    """Whoever holds the HS256 secret still cannot act as the provider's X."""
    sub, secret = f"{ISSUER}|{uid('staff')}", stack.settings.jwt_secret
    assert secret is not None
    with pytest.raises(ValueError, match="may not hold"):
        issue_token(secret, sub, ["admin"])
    claims = {"sub": sub, "roles": ["admin"], "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, secret, algorithm="HS256")
    assert listed(oidc_api, forged) == 401


async def test_a_customer_owns_the_orders_of_their_principal_id_only(
    stack: Stack, oidc_api: str, provider: tuple[Provider, str]
) -> None:
    """An order registered for the provider's customer carries `{iss}|{sub}` as its user_id:
    that customer sees and refunds it; the HS256 customer of the same sub gets 404, and the
    provider's customer gets 404 for the HS256 customer's order."""
    sub = uid("cust")
    provider_customer = provider_bearer(provider[0], sub, "customer")
    hs256_customer = stack.token(sub, "customer")
    async with httpx.AsyncClient(base_url=oidc_api, timeout=60) as http:
        shop = Shop.open(stack, http)
        theirs = await shop.order(amount=2000, user_id=f"{ISSUER}|{sub}")
        bare = await shop.order(amount=2000, user_id=sub)
        path = f"/v1/orders/{theirs['order_no']}"
        assert (await http.get(path, headers=provider_customer)).status_code == 200
        assert (await http.get(path, headers=hs256_customer)).status_code == 404
        bare_path = f"/v1/orders/{bare['order_no']}"
        assert (await http.get(bare_path, headers=provider_customer)).status_code == 404
        assert (await http.get(bare_path, headers=hs256_customer)).status_code == 200

        refund = await shop.refund(theirs, 500, as_=provider_customer)
        assert (refund["requested_by"], refund["status"]) == ("you", "pending_approval")
        staff = await shop.get_refund(refund["refund_no"])
        assert staff["requested_by"] == f"{ISSUER}|{sub}"
        stolen = await shop.request_refund(bare, 500, as_=provider_customer)
        assert stolen.status_code == 404, stolen.text
        assert (await shop.get_order(bare["order_no"]))["refundable_amount"] == 2000
