"""`refunds events redeliver --since ISO [--endpoint ID]`: queue the shops' deliveries again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from refunds.db.engine import make_engine, make_sessionmaker
from refunds.db.outbox import OutboxRepository, woken
from refunds.db.sealing import configure_sealing
from refunds.runtime.temporal_client import connect
from refunds.runtime.webhook_relay import wake_quietly
from refunds.settings import Settings, get_settings


def parse_since(raw: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise SystemExit(f"--since {raw!r} is not an ISO 8601 time") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


async def _redeliver(settings: Settings, since: datetime, endpoint_id: int | None) -> int:
    if settings.database_url is None:
        raise SystemExit("REFUNDS_DATABASE_URL is not set")
    configure_sealing(settings.sealing_keys())
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            queued = await OutboxRepository(session).redeliver(since=since, endpoint_id=endpoint_id)
        endpoints = woken(session)
    finally:
        await engine.dispose()
    if endpoints:
        # Without Temporal the deliveries still go at the endpoints' next sweep.
        await wake_quietly(await connect(settings), settings, endpoints)
    return queued


def redeliver(since: str, endpoint_id: int | None) -> int:
    queued = asyncio.run(_redeliver(get_settings(), parse_since(since), endpoint_id))
    print(f"{queued} deliveries queued again")
    return 0
