"""A Stripe sandbox for the session and a `StripeGateway` pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateways.stripe_gateway import StripeConfig, StripeGateway
from tests.sandboxes.stripe_support import StripeStack, running_sandbox


@pytest.fixture(scope="session")
def stripe_session() -> Iterator[StripeStack]:
    with running_sandbox() as stack:
        yield stack


@pytest.fixture
def stripe_stack(stripe_session: StripeStack) -> Iterator[StripeStack]:
    yield stripe_session
    stripe_session.control.delete("/_sandbox/faults").raise_for_status()


def gateway_for(stack: StripeStack, timeout_seconds: float = 5.0) -> StripeGateway:
    return StripeGateway(
        StripeConfig(
            api_key=stack.api_key,
            api_base=stack.url,
            webhook_secret=stack.webhook_secret,
            rate_limit=100,
            timeout_seconds=timeout_seconds,
            webhook_tolerance_seconds=300,
        )
    )


@pytest.fixture
def gateway(stripe_stack: StripeStack) -> StripeGateway:
    return gateway_for(stripe_stack)
