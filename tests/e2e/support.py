"""Helpers the end-to-end tests share: an approved refund, an API with other timings, the
sandboxes' books, a held order lock, raw timeline reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.models import Restoration
from tests.factories import Shop, sandbox, stripe_fault, uid

Sessions = async_sessionmaker[AsyncSession]


@asynccontextmanager
async def api_with(shop: Shop, **timings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same stack whose new refunds carry these timings."""
    url = shop.stack.api(shop.stack.settings.model_copy(update=timings))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client


async def approved(shop: Shop, amount: int, *faults: str, **fault_args: Any) -> tuple[dict, str]:
    """A paid order refunded in full and approved, with these Stripe sandbox faults armed for
    the refund first: (the order, the refund_no)."""
    order = await shop.order(amount=amount)
    refund_no = uid("rf")
    for fault in faults:
        await stripe_fault(shop.stack, refund_no, fault, **fault_args)
    await shop.refund(order, amount, refund_no=refund_no)
    assert (await shop.approve(refund_no)).status_code == 200
    return order, refund_no


async def stripe_refunds(shop: Shop, refund_no: str) -> list[dict[str, Any]]:
    """Every refund the Stripe sandbox holds under this refund_no (metadata)."""
    body = await sandbox(
        shop.stack.stripe_url, "GET", "/_sandbox/refunds", params={"refund_no": refund_no}
    )
    return list(body["data"])


async def wechat_refunds(shop: Shop, refund_no: str) -> list[dict[str, Any]]:
    body = await sandbox(
        shop.stack.wechat_url, "GET", "/sandbox/refunds", params={"refund_no": refund_no}
    )
    return list(body["refunds"])


async def stripe_request_fault(shop: Shop, **spec: Any) -> None:
    await sandbox(shop.stack.stripe_url, "POST", "/_sandbox/faults", json=spec)


async def clear_stripe_faults(shop: Shop) -> None:
    await sandbox(shop.stack.stripe_url, "DELETE", "/_sandbox/faults")


@asynccontextmanager
async def order_locked(sessionmaker: Sessions, order_no: str) -> AsyncIterator[None]:
    """Hold the order's row lock: every ledger step of its refunds waits until we let go."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("SELECT 1 FROM orders WHERE order_no = :no FOR UPDATE"), {"no": order_no}
        )
        yield


async def restorations(sessionmaker: Sessions, refund_no: str) -> list[str]:
    async with sessionmaker() as session:
        stmt = select(Restoration.kind).where(Restoration.refund_no == refund_no)
        return sorted((await session.scalars(stmt)).all())


def timeline(refund: dict[str, Any], event: str) -> list[dict[str, Any]]:
    """The refund's timeline entries of one kind, in order."""
    return [e for e in refund["timeline"] if e["event"] == event]
