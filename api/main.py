"""The FastAPI app: one engine and one Temporal client per process, created in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api import console, docs, errors
from api.auth import TokenReader
from api.middleware import BodyLimit, ConsoleHeaders, QueryLimit, RequestContext
from api.routes import (
    codec,
    events,
    health,
    orders,
    reconciliations,
    refunds,
    webhook_endpoints,
    webhooks,
)
from refunds.db.engine import make_engine, make_sessionmaker
from refunds.db.sealing import configure_sealing
from refunds.gateways.registry import build_gateways
from refunds.runtime.payload_codec import EncryptionCodec
from refunds.runtime.temporal_client import connect
from refunds.settings import Settings, get_settings

ROUTERS = tuple(
    m.router
    for m in (
        health,
        orders,
        refunds,
        reconciliations,
        webhooks,
        webhook_endpoints,
        events,
        codec,
    )
)

DESCRIPTION = """Durable refunds for paid orders: Stripe and WeChat Pay v3.

**Auth**: `Authorize` with a JWT (`refunds token --sub alice --role admin`); roles `customer`,
`approver`, `admin`, `ops`.

**Errors** are `{"error": {"type", "code", "message", "param"}}`: `code` is stable and specific,
`type` one of `invalid_request_error`, `authentication_error`, `permission_error`,
`not_found_error`, `conflict_error`, `api_error`; `param` names the field at fault or is null.

Every response carries a `Request-Id` header (yours, when you send a sane `Request-Id`). A body
over `REFUNDS_MAX_BODY_BYTES` (64 KiB by default) is refused with 413 `request_too_large`.
"""


class LazyTemporal:
    """Connect on first use, so the API starts (and /readyz says why) while Temporal is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await connect(self.settings, attempts=1)
        return self._client


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.database_url is None:
        raise SystemExit("REFUNDS_DATABASE_URL is not set (refunds dev sets it for you)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_sealing(settings.sealing_keys())
        engine = make_engine(settings.database_url or "")
        app.state.settings = settings
        app.state.sessionmaker = make_sessionmaker(engine)
        # For routes that only read: no BEGIN, and no ROLLBACK at the end, which costs a round
        # trip and makes psycopg drop the connection's prepared statements (DEALLOCATE ALL).
        app.state.read_sessionmaker = make_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        app.state.temporal = LazyTemporal(settings)
        app.state.gateways = {str(k): v for k, v in build_gateways(settings).items()}
        app.state.tokens = TokenReader(settings)
        app.state.codec = EncryptionCodec(settings.payload_key_set())  # the codec server's
        console.start(app)
        yield
        await engine.dispose()

    app = FastAPI(
        title="Refunds",
        version="0.1.0",
        lifespan=lifespan,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=docs.operation_id,
    )
    errors.install(app)
    docs.install(app)
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)
    # The last added runs first: every response, a 413 included, carries its Request-Id.
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(QueryLimit)
    app.add_middleware(ConsoleHeaders)
    app.add_middleware(RequestContext)
    # Outermost: a preflight from the Temporal UI is answered before anything else runs.
    app.add_middleware(codec.CodecCors, ui_url=settings.temporal_ui_url)
    return app
