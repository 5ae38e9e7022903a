"""The money rule of SPEC §3 under concurrency: the refunds that count never add up to more than
the paid amount, enforced by the database, whatever the API and workflows do at the same time."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.models import Order, Refund
from tests.factories import Shop, sandbox, uid

Sessions = async_sessionmaker[AsyncSession]
PAID = 10000


async def test_thirty_concurrent_refunds_never_reserve_more_than_paid(
    shop: Shop, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=PAID)
    amounts = [random.Random(i).randint(300, 1200) for i in range(30)]
    assert sum(amounts) > PAID
    refund_nos = [uid("rf") for _ in amounts]
    responses = await asyncio.gather(
        *(
            shop.request_refund(
                order, amount, refund_no=no, as_=shop.admin if i % 2 else shop.customer
            )
            for i, (amount, no) in enumerate(zip(amounts, refund_nos, strict=True))
        )
    )
    outcomes = list(zip(refund_nos, amounts, responses, strict=True))
    accepted = {no: amount for no, amount, r in outcomes if r.status_code == 202}
    rejected = {no: amount for no, amount, r in outcomes if r.status_code != 202}
    assert accepted and rejected
    assert sum(accepted.values()) <= PAID
    for response in responses:
        if response.status_code != 202:
            assert response.status_code == 409, response.text
            assert response.json()["error"]["code"] == "refund_exceeds_refundable"
    # The refundable amount only shrinks, so each refusal was for more than what is left now.
    assert PAID - sum(accepted.values()) < min(rejected.values())

    after = await shop.get_order(order["order_no"])
    assert after["reserved_amount"] == sum(accepted.values())
    assert after["refundable_amount"] == PAID - sum(accepted.values())
    assert sorted(r["refund_no"] for r in after["refunds"]) == sorted(accepted)
    async with sessionmaker() as session:
        row = (
            await session.scalars(select(Order).where(Order.order_no == order["order_no"]))
        ).one()
        assert (row.reserved_amount, row.refunded_amount) == (sum(accepted.values()), 0)
        stored = await session.scalars(
            select(Refund.refund_no).where(Refund.order_no == row.order_no)
        )
        assert sorted(stored.all()) == sorted(accepted)
    for refund_no in rejected:
        missing = await shop.http.get(f"/v1/refunds/{refund_no}", headers=shop.admin)
        assert missing.status_code == 404
        at_gateway = await sandbox(
            shop.stack.stripe_url, "GET", "/_sandbox/refunds", params={"refund_no": refund_no}
        )
        assert at_gateway["data"] == []
        assert int(at_gateway["create_requests"].get(refund_no, 0)) == 0


async def insert_order(sessionmaker: Sessions) -> str:
    order_no = uid("ord")
    async with sessionmaker.begin() as session:
        session.add(
            Order(
                order_no=order_no,
                user_id=uid("cust"),
                channel="stripe",
                currency="USD",
                total_amount=PAID,
                paid_amount=PAID,
                status="paid",
                refunded_amount=0,
                reserved_amount=0,
            )
        )
    return order_no


@pytest.mark.parametrize(
    "assignment",
    [
        f"reserved_amount = {PAID + 1}",
        "reserved_amount = -1",
        "reserved_amount = 100, refunded_amount = 101",
        "refunded_amount = -1",
    ],
)
async def test_database_refuses_reserved_over_paid_or_refunded_over_reserved(
    sessionmaker: Sessions, assignment: str
) -> None:
    order_no = await insert_order(sessionmaker)
    with pytest.raises(IntegrityError, match="refunds_within_paid"):
        async with sessionmaker.begin() as session:
            await session.execute(
                text(f"UPDATE orders SET {assignment} WHERE order_no = :no"), {"no": order_no}
            )
    async with sessionmaker() as session:
        row = (await session.scalars(select(Order).where(Order.order_no == order_no))).one()
        assert (row.reserved_amount, row.refunded_amount) == (0, 0)


async def test_database_allows_reserving_exactly_the_paid_amount(sessionmaker: Sessions) -> None:
    order_no = await insert_order(sessionmaker)
    async with sessionmaker.begin() as session:
        await session.execute(
            text("UPDATE orders SET reserved_amount = paid_amount WHERE order_no = :no"),
            {"no": order_no},
        )
