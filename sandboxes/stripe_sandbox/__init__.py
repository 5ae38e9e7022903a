"""A Stripe-compatible sandbox server the official `stripe` package works against unchanged.

Run it from code with uvicorn: `uvicorn.run(create_app(StripeSandboxConfig(...)), port=N)`,
then point the client at it: `StripeClient(key, base_addresses={"api": "http://host:N"})`.
"""

from sandboxes.stripe_sandbox.app import create_app
from sandboxes.stripe_sandbox.config import StripeSandboxConfig

__all__ = ["StripeSandboxConfig", "create_app"]
