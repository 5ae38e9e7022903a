"""`Annotated` dependencies: settings, a DB session, the Temporal client, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.auth import Principal, read_token
from refunds.gateways.base import Gateway
from refunds.settings import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    client: Client = await request.app.state.temporal()
    return client


def get_gateways(request: Request) -> dict[str, Gateway]:
    gateways: dict[str, Gateway] = request.app.state.gateways
    return gateways


def get_principal(
    settings: Annotated[Settings, Depends(get_app_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    assert settings.jwt_secret is not None
    return read_token(
        settings.jwt_secret,
        authorization,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
GatewaysDep = Annotated[dict[str, Gateway], Depends(get_gateways)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
