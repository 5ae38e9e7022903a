"""Per-test HTTP client and shop; a session Temporal client to look at workflows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from temporalio.client import Client

from tests.factories import Shop
from tests.stack import Stack


@pytest_asyncio.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        yield client


@pytest_asyncio.fixture
async def shop(stack: Stack, http: httpx.AsyncClient) -> Shop:
    return Shop.open(stack, http)


@pytest_asyncio.fixture(scope="session")
async def temporal(stack: Stack) -> Client:
    return await Client.connect(stack.settings.temporal_address)
