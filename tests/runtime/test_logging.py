"""The processes' logging set-up (refunds/runtime/logging.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from refunds.runtime.logging import configure


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root, stripe = logging.getLogger(), logging.getLogger("stripe")
    handlers, level, stripe_level = root.handlers[:], root.level, stripe.level
    yield
    root.handlers[:], root.level = handlers, level
    stripe.setLevel(stripe_level)


def test_the_stripe_librarys_per_request_lines_are_kept_out_at_info(
    restored_logging: None,
) -> None:
    configure("INFO")
    stripe = logging.getLogger("stripe")
    assert not stripe.isEnabledFor(logging.INFO)
    assert stripe.isEnabledFor(logging.WARNING)
    assert logging.getLogger("gateways.stripe").isEnabledFor(logging.INFO)


def test_at_debug_the_stripe_library_says_everything(restored_logging: None) -> None:
    configure("DEBUG")
    assert logging.getLogger("stripe").isEnabledFor(logging.DEBUG)
