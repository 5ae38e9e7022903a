"""gateway_mismatch over its whole table: a gateway refund is ours only with our amount, payment
and currency; a field the gateway's message does not carry is not held against it."""

from __future__ import annotations

import pytest

from refunds.domain.matching import gateway_mismatch, names_our_refund

AMOUNT, PAYMENT, CURRENCY = 5000, "pi_ours", "USD"  # our ledger's

# (what the gateway said: amount, payment, currency) -> the reasons expected, in order
TABLE: list[tuple[str, int | None, str | None, str | None, list[str]]] = [
    ("all_same", 5000, "pi_ours", "USD", []),
    ("currency_lower_case_is_the_same", 5000, "pi_ours", "usd", []),
    ("nothing_said", None, None, None, []),
    ("currency_not_said", 5000, "pi_ours", None, []),
    ("currency_empty_is_not_said", 5000, "pi_ours", "", []),
    ("amount_differs", 4000, "pi_ours", "USD", ["amount 4000 at the gateway, 5000"]),
    ("payment_differs", 5000, "pi_other", "USD", ["payment pi_other at the gateway, pi_ours"]),
    ("currency_differs", 5000, "pi_ours", "JPY", ["currency JPY at the gateway, USD"]),
    (
        "all_differ",
        1,
        "pi_other",
        "JPY",
        ["amount 1 at the gateway", "payment pi_other at the gateway", "currency JPY at"],
    ),
]


@pytest.mark.parametrize(
    ("seen_amount", "seen_payment", "seen_currency", "reasons"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_gateway_refund_is_ours_only_with_our_amount_payment_and_currency(
    seen_amount: int | None,
    seen_payment: str | None,
    seen_currency: str | None,
    reasons: list[str],
) -> None:
    why = gateway_mismatch(
        AMOUNT,
        PAYMENT,
        seen_amount,
        seen_payment,
        currency=CURRENCY,
        seen_currency=seen_currency,
    )
    if not reasons:
        assert why is None
        return
    assert why is not None
    parts = why.split("; ")
    assert len(parts) == len(reasons)
    assert all(part.startswith(want) for part, want in zip(parts, reasons, strict=True))


def test_callers_that_pass_no_currency_compare_amount_and_payment_only() -> None:
    assert gateway_mismatch(5000, "pi_ours", 5000, "pi_ours") is None
    assert gateway_mismatch(5000, "pi_ours", 5000, "pi_ours", seen_currency="JPY") is None
    assert gateway_mismatch(5000, "", 5000, "pi_x") is None


@pytest.mark.parametrize(
    ("ours", "named", "our_own_call", "about_ours"),
    [
        ("re_1", "re_1", False, True),  # a webhook naming our gateway refund
        ("re_1", "re_1", True, True),
        ("re_1", "re_2", False, False),  # another refund under our refund_no
        ("re_1", "re_2", True, False),  # even if our lookup returned it: ours is known
        ("re_1", None, False, False),
        (None, "re_2", True, True),  # our create/lookup found it before ours: it took the no
        (None, "re_2", False, False),  # a webhook before ours is known: about that one alone
        (None, None, False, False),
    ],
)
def test_a_contradicting_word_is_about_ours_only_when_it_names_ours_or_our_call_found_it(
    ours: str | None, named: str | None, our_own_call: bool, about_ours: bool
) -> None:
    assert names_our_refund(ours, named, our_own_call) is about_ours
