"""`Annotated` dependencies: settings, a DB session, the Temporal client, the caller.

All `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per
dependency per request (issue 11: CPU per refund). Only reading a provider's token may block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.auth import Principal, TokenReader, bearer_token
from refunds.gateways.base import Gateway
from refunds.settings import Settings


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for routes that only read, its statements outside any transaction: the same
    answers (at PostgreSQL's READ COMMITTED each statement reads its own snapshot anyway),
    without the BEGIN and ROLLBACK round trips."""
    async with request.app.state.read_sessionmaker() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    client: Client = await request.app.state.temporal()
    return client


async def get_gateways(request: Request) -> dict[str, Gateway]:
    gateways: dict[str, Gateway] = request.app.state.gateways
    return gateways


# A security scheme, not a plain header parameter: Swagger UI's Authorize button fills it in and
# sends it with every "Try it out". auto_error=False: a missing token is our 401, in our shape.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT with claims `sub` and `roles`: `refunds token --sub ID --role ROLE`.",
)


async def get_token_reader(request: Request) -> TokenReader:
    reader: TokenReader = request.app.state.tokens
    return reader


async def get_principal(
    tokens: Annotated[TokenReader, Depends(get_token_reader)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """An HS256 token is checked on the event loop (an HMAC, no I/O); an OIDC provider's in a
    thread, where fetching the provider's keys may block."""
    token = bearer_token(f"Bearer {credentials.credentials}" if credentials else None)
    if tokens.is_oidc(token):
        return (await run_in_threadpool(tokens.identity, token)).principal
    return tokens.identity(token).principal


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
GatewaysDep = Annotated[dict[str, Gateway], Depends(get_gateways)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
