"""The FastAPI app: one engine and one Temporal client per process, created in the lifespan."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from temporalio.client import Client

from api import errors
from api.metrics import LATENCY, REQUESTS
from api.routes import health, orders, reconciliations, refunds, webhooks
from refunds.db.engine import make_engine, make_sessionmaker
from refunds.gateways.registry import build_gateways
from refunds.runtime.temporal_client import connect
from refunds.settings import Settings, get_settings


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
        engine = make_engine(settings.database_url or "")
        app.state.settings = settings
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.temporal = LazyTemporal(settings)
        app.state.gateways = {str(k): v for k, v in build_gateways(settings).items()}
        yield
        await engine.dispose()

    app = FastAPI(
        title="Refunds",
        version="0.1.0",
        lifespan=lifespan,
        description="Durable refunds for paid orders: Stripe and WeChat Pay v3.",
    )
    errors.install(app)
    for module in (health, orders, refunds, reconciliations, webhooks):
        app.include_router(module.router)
    app.middleware("http")(_measure)
    return app


async def _measure(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "unmatched")
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
    return response
