"""A Stripe-compatible sandbox server the official `stripe` package works against unchanged.

Run it from code with uvicorn: `uvicorn.run(create_app(StripeSandboxConfig(...)), port=N)`,
then point the client at it: `StripeClient(key, base_addresses={"api": "http://host:N"})`.

Stripe v1 API (form-encoded, `Authorization: Bearer sk_test_...`): POST /v1/payment_intents,
GET /v1/payment_intents/{id}, POST /v1/payment_intents/{id}/confirm, GET /v1/charges/{id},
POST /v1/refunds (Idempotency-Key honoured), GET /v1/refunds/{id}, GET /v1/refunds
(by `payment_intent`/`charge`, or account-wide; `created` as `T` or `created[gt|gte|lt|lte]`;
newest `created` first; `limit`/`starting_after`/`ending_before`), GET /v1/events/{id}.

Control API (JSON, no auth):
- POST /_sandbox/faults `{"method", "path_prefix", "action": http_500|rate_limit|timeout,
  "times", "delay"}` or `{"refund_no", "action", "times", "delay", "after", "failure_reason"}`
  with refund actions permanent_error, fail, no_webhook, duplicate_webhook,
  out_of_order_webhooks, fail_after_success, pending_forever; GET lists, DELETE clears.
- POST /_sandbox/chaos `{"every": n, "actions": [http_500, timeout], "delay", "path_prefix"?}`:
  every n-th `/v1` call answers 500 (before any work) or stalls `delay` s after doing the work
  (sandboxes/chaos.py); GET -> `{"calls", "hits": {action: n}, ...}`; DELETE turns it off.
- GET /_sandbox/refunds?refund_no=X -> `{"data": [refund...], "create_requests": {X: n}}`.
- GET /_sandbox/events?refund_no=X -> `{"data": [{"event", "refund_id", "refund_no",
  "subscribed", "suppressed", "deliveries": [{"at", "status_code", "error"}]}]}`;
  POST /_sandbox/events/{evt_id}/resend.
- The webhook endpoint's subscription, Stripe's `enabled_events` (config `webhook_events`, CLI
  `--webhook-events`): events it leaves out are created and listed (`"subscribed": false`,
  `pending_webhooks` 0) but not sent. GET /_sandbox/webhook_events -> `{"enabled_events": [...]}`
  (`["*"]`: every event); POST the same body to change it (400 for a name the sandbox never emits).
- POST /_sandbox/refunds/{re_id}/succeed, POST /_sandbox/refunds/{re_id}/fail
  `{"failure_reason"?}`.
- POST /_sandbox/refunds/{re_id}/created `{"created": <unix seconds>}` -> the refund, its
  `created` moved (refunds of "yesterday" for reconciliation); 400 bad body, 404 no refund.
- POST /_sandbox/payments `{"amount", "currency", "payment_method"?, "metadata"?}` -> a
  succeeded PaymentIntent; DELETE /_sandbox/idempotency forgets saved Idempotency-Keys (the
  24-hour expiry).
"""

from refunds.sandboxes.stripe_sandbox.app import create_app
from refunds.sandboxes.stripe_sandbox.config import StripeSandboxConfig

__all__ = ["StripeSandboxConfig", "create_app"]
