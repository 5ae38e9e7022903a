"""JWT bearer auth (HS256, `REFUNDS_JWT_SECRET`): claims `sub`, `roles` and `exp` (a token that
never expires is refused); `iss` and `aud` are checked when `REFUNDS_JWT_ISSUER` /
`REFUNDS_JWT_AUDIENCE` are set."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from refunds.domain.errors import Forbidden, Unauthorized

ROLES = ("customer", "approver", "admin", "ops")


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require(self, *roles: str) -> None:
        if not self.has(*roles):
            raise Forbidden(f"requires one of the roles: {', '.join(roles)}")

    @property
    def is_staff(self) -> bool:
        return self.has("admin", "approver", "ops")


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
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("missing bearer token")
    try:
        claims = jwt.decode(
            authorization[7:].strip(),
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {type(exc).__name__}") from exc
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("invalid token: roles must be a list of strings")
    return Principal(sub=str(claims["sub"]), roles=frozenset(roles))
