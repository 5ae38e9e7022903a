"""Shops' webhook signing secrets are sealed in PostgreSQL with the payload keys: a copy of the
database shows none of them; the code reads them plain; rows written before sealing still read."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.models import WebhookEndpoint
from refunds.db.sealing import PREFIX, SealingError, seal, unseal
from refunds.webhooks.signing import new_secret

Sessions = async_sessionmaker[AsyncSession]
PURPOSE = b"webhook_endpoints.secret"


async def stored(sessionmaker: Sessions, endpoint_id: int) -> tuple[str, str | None]:
    async with sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = :id"),
                {"id": endpoint_id},
            )
        ).one()
        return row[0], row[1]


async def test_a_signing_secret_is_sealed_in_the_database_and_plain_in_the_code(
    sessionmaker: Sessions,
) -> None:
    secret, previous = new_secret(), new_secret()
    async with sessionmaker.begin() as session:
        endpoint = WebhookEndpoint(
            url="https://shop.test/hook",
            event_types=["*"],
            enabled=False,
            secret=secret,
            previous_secret=previous,
        )
        session.add(endpoint)
        await session.flush()
        endpoint_id = endpoint.id
    raw_secret, raw_previous = await stored(sessionmaker, endpoint_id)
    assert raw_secret.startswith(PREFIX) and raw_previous and raw_previous.startswith(PREFIX)
    assert secret not in raw_secret and previous not in raw_previous
    async with sessionmaker() as session:
        read = await session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        )
        assert read is not None
        assert (read.secret, read.previous_secret) == (secret, previous)


async def test_a_secret_stored_before_sealing_still_reads(sessionmaker: Sessions) -> None:
    async with sessionmaker.begin() as session:
        inserted = await session.execute(
            text(
                "INSERT INTO webhook_endpoints (url, event_types, enabled, secret, failing) "
                "VALUES ('https://old.test/hook', '[\"*\"]', false, 'whsec_plain_old', false) "
                "RETURNING id"
            )
        )
        endpoint_id = inserted.scalar_one()
    async with sessionmaker() as session:
        read = await session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        )
        assert read is not None and read.secret == "whsec_plain_old"


def test_each_seal_differs_and_opens_only_for_its_purpose() -> None:
    one, two = seal("whsec_x", PURPOSE), seal("whsec_x", PURPOSE)
    assert one != two  # a fresh nonce each time
    assert unseal(one, PURPOSE) == unseal(two, PURPOSE) == "whsec_x"
    with pytest.raises(InvalidTag):
        unseal(one, b"another.column")


def test_a_secret_sealed_with_a_key_not_configured_is_refused() -> None:
    kid_and_rest = seal("whsec_y", PURPOSE)[len(PREFIX) :]
    _, _, body = kid_and_rest.partition(":")
    foreign = f"{PREFIX}gone-{os.getpid()}:{body}"
    with pytest.raises(SealingError, match="not configured"):
        unseal(foreign, PURPOSE)
