"""JWT bearer auth. Two kinds of tokens, told apart by their `alg` header:

- HS256 (`REFUNDS_JWT_SECRET`): claims `sub`, `roles` and `exp` (a token that never expires is
  refused); `iss` and `aud` are checked when `REFUNDS_JWT_ISSUER` / `REFUNDS_JWT_AUDIENCE` are set.
- RS256 / ES256 from an external OpenID Connect provider (issue 12), when `REFUNDS_OIDC_JWKS_URL`
  is set: signed by a key of that JWKS (by `kid`), `iss` and `aud` always checked, `exp` and `sub`
  required, roles read from `REFUNDS_OIDC_ROLES_CLAIM` (a dotted path into the claims).

Either names a principal id (`refunds.domain.principals`): the bare `sub` of an HS256 token,
`{iss}|{sub}` of a provider's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from refunds.domain.errors import Forbidden, Unauthorized
from refunds.domain.principals import InvalidPrincipal, principal_id
from refunds.settings import Settings

ROLES = ("customer", "approver", "admin", "ops")
# The identities `refunds dev` mints demo tokens for, and its console's sign-in buttons offer.
DEMO_USERS = {"customer": "alice", "approver": "bob", "admin": "carol", "ops": "dave"}
# Asymmetric only: a provider's public key must never be usable as an HMAC secret.
OIDC_ALGORITHMS = ["RS256", "ES256"]


@dataclass(frozen=True)
class Principal:
    # The principal id (`refunds.domain.principals`), not the token's bare `sub`: what
    # `requested_by`, `approved_by` and an order's `user_id` are compared with.
    id: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require(self, *roles: str) -> None:
        if not self.has(*roles):
            raise Forbidden(f"requires one of the roles: {', '.join(roles)}")

    @property
    def is_staff(self) -> bool:
        return self.has("admin", "approver", "ops")


@dataclass(frozen=True)
class Identity:
    """A verified token's principal and when the token stops being valid (epoch seconds)."""

    principal: Principal
    expires_at: int


def issue_token(
    secret: str,
    sub: str,
    roles: list[str],
    ttl_seconds: int = 86400,
    *,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
    principal_id(sub)  # a sub the API would refuse is not worth a token
    now = int(time.time())
    claims: dict[str, object] = {"sub": sub, "roles": roles, "iat": now, "exp": now + ttl_seconds}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(
    secret: str,
    authorization: str | None,
    *,
    issuer: str | None = None,
    audience: str | None = None,
) -> Principal:
    """The principal of a valid bearer token. PyJWT then requires `iss`/`aud` when they are
    given (and refuses any `aud` when none is configured)."""
    return _hs256(secret, bearer_token(authorization), issuer, audience).principal


def bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("missing bearer token")
    return authorization[7:].strip()


def _hs256(secret: str, token: str, issuer: str | None, audience: str | None) -> Identity:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {type(exc).__name__}") from exc
    return _identity(claims, claims.get("roles", []), issuer=None)


def _identity(claims: dict[str, Any], roles: object, *, issuer: str | None) -> Identity:
    """`issuer` None for the service's own tokens; a provider's verified `iss` otherwise."""
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("invalid token: roles must be a list of strings")
    if issuer is not None:  # a provider's token also carries roles of other applications
        roles = [r for r in roles if r in ROLES]
    try:
        principal = Principal(principal_id(str(claims["sub"]), issuer), frozenset(roles))
    except InvalidPrincipal as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    return Identity(principal, int(claims["exp"]))


def claim_at(claims: dict[str, Any], path: str) -> object:
    """`realm_access.roles` → claims["realm_access"]["roles"]; a missing step is no roles."""
    value: object = claims
    for step in path.split("."):
        if not isinstance(value, dict) or step not in value:
            return []
        value = value[step]
    return value


class TokenReader:
    """Reads bearer tokens for one process: HS256 with the shared secret, or, when a JWKS URL is
    configured, RS256/ES256 tokens of that OIDC provider (keys fetched by `kid` and cached)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.jwt_secret is not None
        self.settings = settings
        self.jwks = (
            jwt.PyJWKClient(settings.oidc_jwks_url, lifespan=300, timeout=10)
            if settings.oidc_jwks_url
            else None
        )

    def is_oidc(self, token: str) -> bool:
        if self.jwks is None:
            return False
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            return False
        return alg in OIDC_ALGORITHMS

    def identity(self, token: str) -> Identity:
        """Blocking for a provider's token (`is_oidc`) when its keys must be fetched: read that
        one from a thread. An HS256 token is an HMAC, no I/O."""
        if self.is_oidc(token):
            return self._oidc(token)
        assert self.settings.jwt_secret is not None
        return _hs256(
            self.settings.jwt_secret, token, self.settings.jwt_issuer, self.settings.jwt_audience
        )

    def _oidc(self, token: str) -> Identity:
        assert self.jwks is not None
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=OIDC_ALGORITHMS,
                issuer=self.settings.oidc_issuer,
                audience=self.settings.oidc_audience,
                leeway=timedelta(seconds=30),
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from exc
        roles = claim_at(claims, self.settings.oidc_roles_claim)
        return _identity(claims, roles, issuer=str(claims["iss"]))
