"""Principal ids: who a verified token names, as every comparison in the service sees it
(`requested_by`, `approved_by`, timeline actors, console sessions, an order's `user_id`).

A `sub` is unique only within its issuer (OpenID Connect Core §2: `iss` and `sub` together
identify a person), so the provider's `sub` X and an HS256 token's `sub` X are two people. The
project's own HS256 tokens keep the bare `sub`, so existing rows and `refunds token` tokens keep
naming whom they named; a provider's principal is `{iss}|{sub}`. An HS256 `sub` may not hold
`|`: then no HS256 token, whoever mints it, can spell a provider's principal, and no provider
token a bare one. A customer owns an order when the order's `user_id` is their principal id.
"""

from __future__ import annotations

SEPARATOR = "|"
# The width of the columns that hold principal ids (`refunds.requested_by`, `orders.user_id`…).
MAX_PRINCIPAL_ID = 128


class InvalidPrincipal(ValueError):
    """A token's subject that cannot be a principal id."""


def principal_id(sub: str, issuer: str | None = None) -> str:
    """The principal of `sub`: bare for the project's own tokens (`issuer` None), qualified by
    the provider's issuer for an OpenID Connect token."""
    if not sub:
        raise InvalidPrincipal("the subject is empty")
    if issuer is None:
        if SEPARATOR in sub:
            raise InvalidPrincipal(
                f"a subject of the service's own tokens may not hold {SEPARATOR}"
            )
        found = sub
    else:
        found = f"{issuer}{SEPARATOR}{sub}"
    if len(found) > MAX_PRINCIPAL_ID:
        raise InvalidPrincipal(f"the principal id is longer than {MAX_PRINCIPAL_ID} characters")
    return found
