"""A `StripeGateway` pointed at the session's Stripe sandbox (tests/conftest.py)."""

from __future__ import annotations

import pytest

from refunds.gateways.stripe_gateway import StripeConfig, StripeGateway
from tests.sandboxes.stripe_support import StripeStack


def gateway_for(stack: StripeStack, timeout_seconds: float = 5.0) -> StripeGateway:
    return StripeGateway(
        StripeConfig(
            api_key=stack.api_key,
            api_base=stack.url,
            webhook_secret=stack.webhook_secret,
            timeout_seconds=timeout_seconds,
            webhook_tolerance_seconds=300,
        )
    )


@pytest.fixture
def gateway(stripe_stack: StripeStack) -> StripeGateway:
    return gateway_for(stripe_stack)
