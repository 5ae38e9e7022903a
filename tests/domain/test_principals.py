"""Principal ids: the service's own tokens keep the bare `sub`, a provider's is qualified by its
issuer, and neither can spell the other."""

from __future__ import annotations

import pytest

from refunds.domain.principals import MAX_PRINCIPAL_ID, InvalidPrincipal, principal_id

ISSUER = "https://id.shop.example/realms/staff"


def test_the_service_s_own_token_keeps_the_bare_sub() -> None:
    assert principal_id("carol") == "carol"


def test_a_provider_s_sub_is_qualified_by_its_issuer_so_it_is_another_person() -> None:
    assert principal_id("carol", ISSUER) == f"{ISSUER}|carol"
    assert principal_id("carol", ISSUER) != principal_id("carol")
    assert principal_id("carol", ISSUER) != principal_id("carol", "https://other.example")


def test_an_own_token_cannot_spell_a_provider_s_principal() -> None:
    with pytest.raises(InvalidPrincipal):
        principal_id(f"{ISSUER}|carol")


@pytest.mark.parametrize(
    ("sub", "issuer"),
    [("", None), ("", ISSUER), ("x" * (MAX_PRINCIPAL_ID + 1), None), ("x" * 100, ISSUER)],
)
def test_an_empty_or_too_long_principal_is_refused(sub: str, issuer: str | None) -> None:
    with pytest.raises(InvalidPrincipal):
        principal_id(sub, issuer)
