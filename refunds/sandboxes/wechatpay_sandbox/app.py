"""The HTTP face of the sandbox: signed `/v3` refund APIs and unsigned `/sandbox` controls.

As strict as the real gateway on what it accepts (merchant signature, mchid, timestamp skew), so
a client that works here is configured correctly; every `/v3` answer is signed with the platform
key so `wechatpayv3` verifies it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refunds.gateways.wechatpay_crypto import (
    load_private_key,
    load_public_key,
    parse_authorization,
    platform_headers,
    request_message,
    rsa_verify,
)
from refunds.sandboxes.chaos import ChaosMode
from refunds.sandboxes.wechatpay_sandbox.notify import Notifier
from refunds.sandboxes.wechatpay_sandbox.state import ApiError, Refund, SandboxState

# 查询订单's trade states (SUCCESS paid, the rest not): what a sandbox transaction may be made in.
TRADE_STATES = frozenset(
    {"SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED", "USERPAYING", "PAYERROR"}
)
MAX_CLOCK_SKEW = 300  # seconds, as WeChat Pay enforces on request timestamps
V3Handler = Callable[[Request, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass
class WeChatPaySandboxConfig:
    """Who the sandbox trusts (the merchant public key) and who it is (the platform key)."""

    mchid: str
    merchant_public_key_pem: str
    platform_private_key_pem: str
    platform_public_key_id: str
    apiv3_key: str
    refund_delay: float = 2.0
    state_file: Path | None = None
    merchant_cert_serial_no: str | None = None  # when set, the Authorization serial must match
    notify_attempts: int = 5
    notify_retry_interval: float = 1.0
    appid: str = "wx0000000000000001"  # shown in the transactions it answers with


class WeChatPaySandbox:
    def __init__(self, config: WeChatPaySandboxConfig) -> None:
        self.config = config
        self.state = SandboxState.load(config.state_file)
        self.merchant_key = load_public_key(config.merchant_public_key_pem)
        self.platform_key = load_private_key(config.platform_private_key_pem)
        self.notifier = Notifier(
            self.state,
            mchid=config.mchid,
            apiv3_key=config.apiv3_key,
            platform_key=self.platform_key,
            public_key_id=config.platform_public_key_id,
            attempts=config.notify_attempts,
            retry_interval=config.notify_retry_interval,
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self.chaos = ChaosMode()

    # --- lifecycle -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            self.notifier.client = client
            self.state.coalesce_writes(True)
            # Refunds left PROCESSING by a previous run still finish (the state file survives).
            for refund in self.state.refunds.values():
                if refund.status == "PROCESSING":
                    self._spawn(self._complete_later(refund))
            yield
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.state.coalesce_writes(False)
            self.state.flush()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _complete_later(self, refund: Refund) -> None:
        await asyncio.sleep(self.config.refund_delay)
        await self._complete(refund)

    async def _complete(self, refund: Refund) -> None:
        if refund.status != "PROCESSING":
            return
        self.state.finish(refund)
        await self.notifier.announce(refund)

    # --- signed /v3 plumbing --------------------------------------------------------------------

    def signed(self, status: int, payload: dict[str, Any], forge: bool = False) -> Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = platform_headers(self.platform_key, self.config.platform_public_key_id, body)
        if forge:
            headers["Wechatpay-Signature"] = "Zm9yZ2Vk" + headers["Wechatpay-Signature"][8:]
        headers["Request-ID"] = str(uuid.uuid4())
        return Response(body, status, headers, media_type="application/json; charset=utf-8")

    def _authenticate(self, request: Request, body: str) -> None:
        """Verify the merchant's Authorization header the way WeChat Pay does."""
        params = parse_authorization(request.headers.get("authorization", ""))
        if not params:
            raise ApiError(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
        if params.get("mchid") != self.config.mchid:
            raise ApiError(401, "SIGN_ERROR", "商户号与签名不匹配 (mchid mismatch)")
        expected_serial = self.config.merchant_cert_serial_no
        if expected_serial and params.get("serial_no", "").upper() != expected_serial.upper():
            raise ApiError(401, "SIGN_ERROR", "商户证书序列号错误 (serial_no mismatch)")
        try:
            skew = abs(time.time() - int(params.get("timestamp", "")))
        except ValueError:
            skew = float("inf")
        if skew > MAX_CLOCK_SKEW:
            raise ApiError(401, "SIGN_ERROR", "请求时间戳过期 (timestamp out of range)")
        path = request.scope.get("raw_path", request.url.path.encode()).decode()
        query = request.scope.get("query_string", b"").decode()
        url = f"{path}?{query}" if query else path
        message = request_message(
            request.method, url, params["timestamp"], params.get("nonce_str", ""), body
        )
        if not rsa_verify(self.merchant_key, message, params.get("signature", "")):
            raise ApiError(401, "SIGN_ERROR", "签名错误 (signature does not verify)")

    async def v3(self, request: Request, handler: V3Handler) -> Response:
        """Faults, then authentication, then the handler; every answer signed."""
        raw = (await request.body()).decode("utf-8", errors="replace")
        fault = self.state.take_request_fault(request.method, request.url.path)
        if fault and fault.action == "http_500":
            return self.signed(500, {"code": "SYSTEM_ERROR", "message": "系统错误"})
        if fault and fault.action == "error":
            return self.signed(fault.status, {"code": fault.code, "message": "错误 (injected)"})
        if fault and fault.action == "rate_limit":
            return self.signed(429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"})
        if fault and fault.action == "timeout":
            # The work still happens after the stall: the client gave up, the gateway did not.
            await asyncio.sleep(fault.delay)
        chaos = self.chaos.take(request.url.path)
        if chaos == "http_500":
            return self.signed(500, {"code": "SYSTEM_ERROR", "message": "系统错误 (chaos)"})
        status, payload = await self._handle(request, raw, handler)
        if chaos == "timeout":
            # Stalled after the work: the refund exists, the client only sees its own timeout.
            await asyncio.sleep(self.chaos.delay)
        return self.signed(status, payload, forge=bool(fault and fault.action == "bad_signature"))

    async def _handle(
        self, request: Request, raw: str, handler: V3Handler
    ) -> tuple[int, dict[str, Any]]:
        try:
            self._authenticate(request, raw)
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ApiError(400, "PARAM_ERROR", "请求体必须为 JSON 对象")
            return await handler(request, body)
        except ApiError as err:
            return err.status, {"code": err.code, "message": err.message}
        except json.JSONDecodeError:
            return 400, {"code": "PARAM_ERROR", "message": "请求体不是合法的 JSON"}

    # --- /v3 handlers ---------------------------------------------------------------------------

    async def create_refund(self, request: Request, body: dict[str, Any]) -> tuple[int, dict]:
        refund, created = self.state.create_refund(body)
        answer = refund.to_wire()
        if not created:
            return 200, answer
        if self.state.has_refund_fault(refund.out_refund_no, "notify_before_response"):
            # The answer was computed first (PROCESSING) but only leaves after the notification.
            await self._complete(refund)
        else:
            self._spawn(self._complete_later(refund))
        return 200, answer

    async def query_refund(self, request: Request, body: dict[str, Any]) -> tuple[int, dict]:
        refund = self.state.refunds.get(request.path_params["out_refund_no"])
        if refund is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, refund.to_wire()

    async def query_transaction(self, request: Request, body: dict[str, Any]) -> tuple[int, dict]:
        """查询订单: the merchant's own transactions only, named by its mchid in the query."""
        if request.query_params.get("mchid") != self.config.mchid:
            raise ApiError(400, "PARAM_ERROR", "mchid 与请求商户号不一致")
        txn = self.state.transactions.get(request.path_params["transaction_id"])
        if txn is None:
            raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
        return 200, txn.to_wire(self.config.mchid, self.config.appid)

    # --- /sandbox controls (unsigned) -----------------------------------------------------------

    async def add_transaction(self, request: Request) -> Response:
        body = await request.json()
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return JSONResponse({"code": "PARAM_ERROR", "message": "amount: int > 0"}, 400)
        trade_state = str(body.get("trade_state", "SUCCESS"))
        if trade_state not in TRADE_STATES:
            return JSONResponse({"code": "PARAM_ERROR", "message": "unknown trade_state"}, 400)
        txn = self.state.add_transaction(
            amount, str(body.get("currency", "CNY")), body.get("out_trade_no"), trade_state
        )
        return JSONResponse(
            {
                "transaction_id": txn.transaction_id,
                "out_trade_no": txn.out_trade_no,
                "amount": txn.amount,
                "currency": txn.currency,
                "trade_state": txn.trade_state,
            }
        )

    async def add_fault(self, request: Request) -> Response:
        try:
            return JSONResponse(self.state.add_fault(await request.json()))
        except ApiError as err:
            return JSONResponse({"code": err.code, "message": err.message}, err.status)

    async def set_chaos(self, request: Request) -> Response:
        try:
            return JSONResponse(self.chaos.configure(await request.json()), 201)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"code": "PARAM_ERROR", "message": str(exc)}, 400)

    async def get_chaos(self, request: Request) -> Response:
        return JSONResponse(self.chaos.snapshot())

    async def stop_chaos(self, request: Request) -> Response:
        return JSONResponse(self.chaos.off())

    async def clear_faults(self, request: Request) -> Response:
        self.state.request_faults.clear()
        self.state.refund_faults.clear()
        return JSONResponse({"cleared": True})

    async def list_refunds(self, request: Request) -> Response:
        refund_no = request.query_params.get("refund_no")
        refunds = [
            r.to_wire()
            for r in self.state.refunds.values()
            if refund_no is None or r.out_refund_no == refund_no
        ]
        counts = {k: v for k, v in self.state.create_requests.items() if refund_no in (None, k)}
        return JSONResponse({"refunds": refunds, "create_requests": counts})

    async def settle(self, request: Request) -> Response:
        """`{"status": "SUCCESS", "notify": false}`: move a refund as WeChat Pay may after it
        finished (an ABNORMAL refund settled offline); notified unless `notify` is false."""
        body = await request.json()
        try:
            refund = self.state.settle(
                request.path_params["out_refund_no"], str(body.get("status"))
            )
        except ApiError as err:
            return JSONResponse({"code": err.code, "message": err.message}, err.status)
        if body.get("notify", True):
            await self.notifier.announce(refund)
        return JSONResponse(refund.to_wire())

    async def list_notifications(self, request: Request) -> Response:
        refund_no = request.query_params.get("refund_no")
        found = [n for n in self.state.notifications if refund_no in (None, n["refund_no"])]
        return JSONResponse({"notifications": found})

    async def resend_notification(self, request: Request) -> Response:
        """Replay a sent notification byte for byte (same id): the receiver must dedupe it."""
        wanted = (await request.json()).get("id")
        sent = next((n for n in self.state.notifications if n["id"] == wanted), None)
        if sent is None:
            return JSONResponse({"code": "RESOURCE_NOT_EXISTS", "message": "no such id"}, 404)
        delivered = await self.notifier.send({**sent, "attempts": [], "delivered": False})
        return JSONResponse({"id": wanted, "delivered": delivered})


def create_app(config: WeChatPaySandboxConfig) -> Starlette:
    """The sandbox as an ASGI app; run it with uvicorn or `BackgroundServer`."""
    sandbox = WeChatPaySandbox(config)

    def v3(handler: V3Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await sandbox.v3(request, handler)

        return endpoint

    routes = [
        Route("/v3/refund/domestic/refunds", v3(sandbox.create_refund), methods=["POST"]),
        Route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            v3(sandbox.query_refund),
            methods=["GET"],
        ),
        Route(
            "/v3/pay/transactions/id/{transaction_id}",
            v3(sandbox.query_transaction),
            methods=["GET"],
        ),
        Route("/sandbox/transactions", sandbox.add_transaction, methods=["POST"]),
        Route("/sandbox/faults", sandbox.add_fault, methods=["POST"]),
        Route("/sandbox/faults", sandbox.clear_faults, methods=["DELETE"]),
        Route("/sandbox/chaos", sandbox.set_chaos, methods=["POST"]),
        Route("/sandbox/chaos", sandbox.get_chaos, methods=["GET"]),
        Route("/sandbox/chaos", sandbox.stop_chaos, methods=["DELETE"]),
        Route("/sandbox/refunds", sandbox.list_refunds, methods=["GET"]),
        Route("/sandbox/refunds/{out_refund_no}/status", sandbox.settle, methods=["POST"]),
        Route("/sandbox/notifications", sandbox.list_notifications, methods=["GET"]),
        Route("/sandbox/notifications/resend", sandbox.resend_notification, methods=["POST"]),
        Route("/healthz", lambda request: JSONResponse({"ok": True}), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=sandbox.lifespan)
    app.state.sandbox = sandbox
    return app
