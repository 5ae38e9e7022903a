"""Pure ASGI middleware around every request: its Request-Id, one JSON access-log line, the
request metrics, and the body size limit enforced before any route reads the body."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.metrics import LATENCY, REQUESTS

DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Every query parameter of the API and the console is bounded (`api.params`); the longest, a
# console `next` path, is 2000 characters. A longer query string is refused before routing.
MAX_QUERY_BYTES = 4096

# A caller's id is echoed only when it cannot smuggle anything into a header or a log line.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("refunds.access")


def request_id_of(scope: Scope) -> str:
    """The caller's `Request-Id` (or `X-Request-Id`) when sane, else a fresh one."""
    headers = dict(scope.get("headers") or [])
    for name in (b"request-id", b"x-request-id"):
        given = headers.get(name, b"").decode("latin-1")
        if SANE_REQUEST_ID.match(given):
            return given
    return f"req_{uuid.uuid4().hex}"


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RequestContext:
    """Outermost: gives each request its id, echoes it on every response (errors and 413 too),
    counts it by route template and writes one access-log line. Never logs headers or bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status, started_response = 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Still a JSON error with its id; the exception goes on to the server's log.
            if not started_response:
                body = error_body(500, "internal_error", f"internal error (request {request_id})")
                await send_json(send_with_id, 500, body)
            raise
        finally:
            self._record(scope, request_id, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None)
        method = scope["method"]
        REQUESTS.labels(method, route or "unmatched", str(status)).inc()
        LATENCY.labels(method, route or "unmatched").observe(seconds)
        access_log.info(
            "request",
            extra={
                "method": method,
                "path": route or scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "request_id": request_id,
            },
        )


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """413 `request_too_large` for a body over the limit, before the app sees any of it: a
    declared Content-Length is refused at once, a streamed body is read up to the limit first."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        try:
            # A malformed length never gets here: the server refuses it first.
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise BodyTooLarge
            body, more = await self._read(receive)
        except BodyTooLarge:
            await send_json(send, 413, self._refusal())
            return
        await self.app(scope, self._replay(body, more, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes, list[Message]]:
        """The whole body (at most the limit), and any non-body message met on the way."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), [message]  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), []

    @staticmethod
    def _replay(body: bytes, pending: list[Message], receive: Receive) -> Receive:
        queue: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        queue.extend(pending)

        async def replay() -> Message:
            return queue.pop(0) if queue else await receive()

        return replay

    def _refusal(self) -> dict[str, Any]:
        return error_body(
            413,
            "request_too_large",
            f"the request body is over the limit of {self.max_body_bytes} bytes",
        )


class QueryLimit:
    """414 `query_too_long` for a query string over `MAX_QUERY_BYTES`, before the app parses
    it: each parameter's own bound is checked by its route, this bounds them all together."""

    def __init__(self, app: ASGIApp, max_query_bytes: int = MAX_QUERY_BYTES) -> None:
        self.app = app
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("query_string", b"")) > self.max_query_bytes:
            message = f"the query string is over {self.max_query_bytes} bytes"
            await send_json(send, 414, error_body(414, "query_too_long", message))
            return
        await self.app(scope, receive, send)


# The console's pages load one script and one stylesheet of their own: no inline script or style,
# no plugin, no <base>, forms only to the console, never framed.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CONSOLE_HEADERS = [
    (b"content-security-policy", CONSOLE_CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Same-origin requests keep their Referer (sign-in falls back to it for where to return);
    # links out of the console (the Temporal UI) carry none.
    (b"referrer-policy", b"same-origin"),
]


class ConsoleHeaders:
    """The console's security headers on every answer under `/console`: pages, error pages,
    redirects, the live JSON and the static files alike."""

    def __init__(self, app: ASGIApp, prefix: str = "/console") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in CONSOLE_HEADERS if n not in given]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
