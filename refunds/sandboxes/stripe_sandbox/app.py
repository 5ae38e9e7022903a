"""The HTTP face of the sandbox: Stripe's v1 wire protocol plus `/_sandbox/` control endpoints.

Every v1 call goes through `V1Handler`: authenticate, decode the form, count refund creates,
apply injected request faults, then honour `Idempotency-Key` the way Stripe does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refunds.sandboxes.stripe_sandbox.config import (
    ALL_EVENTS,
    StripeSandboxConfig,
    webhook_subscription,
)
from refunds.sandboxes.stripe_sandbox.errors import StripeAPIError
from refunds.sandboxes.stripe_sandbox.faults import Fault, fault_from_json
from refunds.sandboxes.stripe_sandbox.forms import nest_pairs, parse_form
from refunds.sandboxes.stripe_sandbox.service import StripeSandbox
from refunds.sandboxes.stripe_sandbox.store import Obj, new_id

ApiCall = Callable[..., Obj]


def error_response(exc: StripeAPIError) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status, headers={"Request-Id": new_id("req")})


class V1Handler:
    """Wraps a sandbox method as a Stripe endpoint."""

    def __init__(self, sandbox: StripeSandbox) -> None:
        self.sandbox = sandbox

    def __call__(self, call: ApiCall) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return await self._handle(request, call)
            except StripeAPIError as exc:
                return error_response(exc)

        return endpoint

    async def _handle(self, request: Request, call: ApiCall) -> Response:
        self._authenticate(request)
        params = await _params(request)
        method, path = request.method, request.url.path
        refund_no = _refund_no(params) if (method, path) == ("POST", "/v1/refunds") else None
        if refund_no:
            self.sandbox.store.count_create_request(refund_no)
        await self._inject_fault(method, path, refund_no)
        chaos = self.sandbox.chaos.take(path)
        if chaos == "http_500":
            raise StripeAPIError(500, "api_error", "An unknown error occurred (chaos).")
        response = self._answer(request, call, params)
        if chaos == "timeout":
            # The work is done and saved; only the answer is late, past the client's patience.
            await asyncio.sleep(self.sandbox.chaos.delay)
        return response

    def _answer(self, request: Request, call: ApiCall, params: dict[str, Any]) -> Response:
        method, path = request.method, request.url.path
        key = request.headers.get("idempotency-key") if method == "POST" else None
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        if key and (replay := self._replay(key, fingerprint)) is not None:
            return replay
        try:
            status, body = 200, call(params, **request.path_params)
        except StripeAPIError as exc:
            status, body = exc.status, exc.body()
        if key:
            self._remember(key, fingerprint, status, body)
        return JSONResponse(body, status, headers={"Request-Id": new_id("req")})

    def _authenticate(self, request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        expected = self.sandbox.config.api_key
        ok = scheme.lower() == "bearer" and (
            key == expected if expected else key.startswith("sk_test_")
        )
        if not ok:
            shown = f"{key[:8]}***{key[-4:]}" if len(key) > 12 else "***"
            raise StripeAPIError(401, "invalid_request_error", f"Invalid API Key provided: {shown}")

    async def _inject_fault(self, method: str, path: str, refund_no: str | None) -> None:
        fault = self.sandbox.faults.take_request_fault(method, path, refund_no)
        if fault is None:
            return
        if fault.action == "timeout":
            # Answer late but still do the work: the "timed out yet succeeded" case.
            await asyncio.sleep(fault.delay)
            return
        if fault.action == "rate_limit":
            raise StripeAPIError(
                429,
                "invalid_request_error",
                "Too many requests hit the API too quickly.",
                "rate_limit",
            )
        raise StripeAPIError(500, "api_error", "An unknown error occurred (injected).")

    def _replay(self, key: str, fingerprint: str) -> Response | None:
        """Same key + same request replays the saved answer; other params are an error."""
        saved = self.sandbox.state.idempotency.get(key)
        if saved is None:
            return None
        if saved["fingerprint"] != fingerprint:
            raise StripeAPIError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
            )
        headers = {"Idempotent-Replayed": "true", "Request-Id": new_id("req")}
        return JSONResponse(saved["body"], saved["status"], headers=headers)

    def _remember(self, key: str, fingerprint: str, status: int, body: Obj) -> None:
        # Stripe does not save answers to requests that failed on its side (5xx).
        if status < 500:
            self.sandbox.state.idempotency[key] = {
                "fingerprint": fingerprint,
                "status": status,
                "body": body,
            }
            self.sandbox.store.save()


async def _params(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "DELETE"):
        return nest_pairs(request.query_params.multi_items())
    return parse_form(await request.body())


def _refund_no(params: dict[str, Any]) -> str | None:
    metadata = params.get("metadata")
    return metadata.get("refund_no") if isinstance(metadata, dict) else None


class ControlHandler:
    """`/_sandbox/` endpoints: faults, inspection and forced transitions, plain JSON."""

    def __init__(self, sandbox: StripeSandbox) -> None:
        self.sandbox = sandbox

    async def add_fault(self, request: Request) -> Response:
        try:
            fault: Fault = fault_from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": {"code": "invalid_fault", "message": str(exc)}}, 400)
        return JSONResponse(self.sandbox.faults.add(fault).as_dict(), 201)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse({"data": [f.as_dict() for f in self.sandbox.faults.all()]})

    async def clear_faults(self, request: Request) -> Response:
        self.sandbox.faults.clear()
        return JSONResponse({"cleared": True})

    async def set_chaos(self, request: Request) -> Response:
        try:
            return JSONResponse(self.sandbox.chaos.configure(await request.json()), 201)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": {"code": "invalid_chaos", "message": str(exc)}}, 400)

    async def get_chaos(self, request: Request) -> Response:
        return JSONResponse(self.sandbox.chaos.snapshot())

    async def stop_chaos(self, request: Request) -> Response:
        return JSONResponse(self.sandbox.chaos.off())

    async def expire_idempotency_keys(self, request: Request) -> Response:
        """Forget every saved Idempotency-Key, as Stripe does after ~24 hours."""
        expired = len(self.sandbox.state.idempotency)
        self.sandbox.state.idempotency.clear()
        self.sandbox.store.save()
        return JSONResponse({"expired": expired})

    async def refunds(self, request: Request) -> Response:
        refund_no = request.query_params.get("refund_no")
        counts = self.sandbox.state.create_requests
        if refund_no is not None:
            counts = {refund_no: counts.get(refund_no, 0)}
        data = self.sandbox.store.refunds_by_refund_no(refund_no)
        return JSONResponse({"data": data, "create_requests": counts})

    async def events(self, request: Request) -> Response:
        refund_no = request.query_params.get("refund_no")
        records = [
            r for r in self.sandbox.state.events if refund_no is None or r["refund_no"] == refund_no
        ]
        return JSONResponse({"data": records})

    async def webhook_events(self, request: Request) -> Response:
        return JSONResponse(self._subscription())

    async def subscribe(self, request: Request) -> Response:
        """`{"enabled_events": [...]}` as Stripe's webhook endpoint takes it; `["*"]`: all."""
        try:
            body = await request.json()
            names = body["enabled_events"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("enabled_events must be a list of event type names")
            self.sandbox.subscribe(webhook_subscription(names))
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": {"code": "invalid_events", "message": str(exc)}}, 400)
        return JSONResponse(self._subscription())

    def _subscription(self) -> Obj:
        events = self.sandbox.webhook_events
        return {"enabled_events": sorted(events) if events is not None else [ALL_EVENTS]}

    async def resend(self, request: Request) -> Response:
        return self._guard(lambda: self.sandbox.resend(request.path_params["id"]))

    async def create_payment(self, request: Request) -> Response:
        """A paid PaymentIntent in one call, for seeding without a Stripe client."""
        body = await request.json()
        params = {
            "amount": str(body.get("amount", "")),
            "currency": body.get("currency", "usd"),
            "payment_method": body.get("payment_method", "pm_card_visa"),
            "confirm": "true",
            "metadata": body.get("metadata", {}),
        }
        return self._guard(lambda: self.sandbox.create_payment_intent(params), 201)

    async def succeed(self, request: Request) -> Response:
        return self._guard(lambda: self.sandbox.force(request.path_params["id"], "succeed"))

    async def fail(self, request: Request) -> Response:
        raw = await request.body()
        reason = json.loads(raw).get("failure_reason") if raw else None
        return self._guard(lambda: self.sandbox.force(request.path_params["id"], "fail", reason))

    async def backdate(self, request: Request) -> Response:
        """Set a refund's `created`, for refunds of a chosen day (reconciliation tests)."""
        try:
            created = _unix_seconds(await request.json(), "created")
        except ValueError as exc:
            return JSONResponse({"error": {"code": "invalid_created", "message": str(exc)}}, 400)
        return self._guard(lambda: self.sandbox.backdate(request.path_params["id"], created))

    @staticmethod
    def _guard(action: Callable[[], Obj], status: int = 200) -> Response:
        try:
            return JSONResponse(action(), status)
        except StripeAPIError as exc:
            return error_response(exc)


def _unix_seconds(body: object, name: str) -> int:
    value = body.get(name) if isinstance(body, dict) else None
    # bool is an int subclass: `true` is no timestamp.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer of unix seconds")
    return value


def create_app(config: StripeSandboxConfig) -> Starlette:
    """A Stripe-compatible ASGI app; point `stripe`'s api base at where it is served."""
    sandbox = StripeSandbox(config)
    v1 = V1Handler(sandbox)
    control = ControlHandler(sandbox)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        sandbox.store.coalesce_writes(True)
        yield
        await sandbox.stop()
        sandbox.store.coalesce_writes(False)
        sandbox.store.flush()

    async def unknown(request: Request) -> Response:
        message = f"Unrecognized request URL ({request.method}: {request.url.path})."
        return error_response(StripeAPIError.invalid(message, status=404))

    routes = [
        Route(
            "/v1/payment_intents", v1(lambda p: sandbox.create_payment_intent(p)), methods=["POST"]
        ),
        Route(
            "/v1/payment_intents/{id}",
            v1(lambda p, id: sandbox.payment_intent(id)),
            methods=["GET"],
        ),
        Route(
            "/v1/payment_intents/{id}/confirm",
            v1(lambda p, id: sandbox.confirm_payment_intent(id, p)),
            methods=["POST"],
        ),
        Route("/v1/charges/{id}", v1(lambda p, id: sandbox.charge(id)), methods=["GET"]),
        Route("/v1/refunds", v1(lambda p: sandbox.create_refund(p)), methods=["POST"]),
        Route("/v1/refunds", v1(lambda p: sandbox.list_refunds(p)), methods=["GET"]),
        Route("/v1/refunds/{id}", v1(lambda p, id: sandbox.refund(id)), methods=["GET"]),
        Route("/v1/events", v1(lambda p: sandbox.list_events(p)), methods=["GET"]),
        Route("/v1/events/{id}", v1(lambda p, id: sandbox.event(id)), methods=["GET"]),
        Route("/v1/{rest:path}", unknown, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/faults", control.add_fault, methods=["POST"]),
        Route("/_sandbox/faults", control.list_faults, methods=["GET"]),
        Route("/_sandbox/faults", control.clear_faults, methods=["DELETE"]),
        Route("/_sandbox/chaos", control.set_chaos, methods=["POST"]),
        Route("/_sandbox/chaos", control.get_chaos, methods=["GET"]),
        Route("/_sandbox/chaos", control.stop_chaos, methods=["DELETE"]),
        Route("/_sandbox/payments", control.create_payment, methods=["POST"]),
        Route("/_sandbox/idempotency", control.expire_idempotency_keys, methods=["DELETE"]),
        Route("/_sandbox/refunds", control.refunds, methods=["GET"]),
        Route("/_sandbox/refunds/{id}/succeed", control.succeed, methods=["POST"]),
        Route("/_sandbox/refunds/{id}/fail", control.fail, methods=["POST"]),
        Route("/_sandbox/refunds/{id}/created", control.backdate, methods=["POST"]),
        Route("/_sandbox/events", control.events, methods=["GET"]),
        Route("/_sandbox/webhook_events", control.webhook_events, methods=["GET"]),
        Route("/_sandbox/webhook_events", control.subscribe, methods=["POST"]),
        Route("/_sandbox/events/{id}/resend", control.resend, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app
