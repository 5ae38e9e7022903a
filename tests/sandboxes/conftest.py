"""One Stripe sandbox for the session; each test clears the faults it set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandboxes.stripe_support import StripeStack, running_sandbox


@pytest.fixture(scope="session")
def stripe_session() -> Iterator[StripeStack]:
    with running_sandbox() as stack:
        yield stack


@pytest.fixture
def stripe_stack(stripe_session: StripeStack) -> Iterator[StripeStack]:
    yield stripe_session
    stripe_session.control.delete("/_sandbox/faults").raise_for_status()
