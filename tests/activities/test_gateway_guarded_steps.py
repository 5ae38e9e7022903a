"""The ledger steps that meet the gateway's word, on the real PostgreSQL: an ops `failed` is
refused under the row lock while the heard gateway status says it paid or may still pay, and a
failed refund reopened by a late success counts its amount again only within what was paid."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from temporalio.exceptions import ApplicationError

from activities.ledger import LedgerActivities
from refunds.db.models import Order, Refund
from refunds.domain.messages import Channel, RefundFacts, RefundSource, RefundStatus, Step
from tests.activities.ledger_support import Sessions, seed_order, seed_refund

S = RefundStatus


async def a_refund(
    sessionmaker: Sessions, amount: int, status: RefundStatus, gateway_status: str | None
) -> tuple[Order, RefundFacts]:
    order = await seed_order(sessionmaker, paid=amount)
    refund_no = await seed_refund(sessionmaker, order, amount)
    async with sessionmaker.begin() as session:
        await session.execute(
            update(Refund)
            .where(Refund.refund_no == refund_no)
            .values(status=status.value, gateway_status=gateway_status)
        )
        if status == S.FAILED:
            await session.execute(
                update(Order).where(Order.id == order.id).values(reserved_amount=0)
            )
    facts = RefundFacts(
        refund_no=refund_no,
        order_no=order.order_no,
        amount=amount,
        currency=order.currency,
        channel=Channel.STRIPE,
        payment_ref=order.payment_ref or "",
        total_amount=amount,
        reason="test",
        requested_by=order.user_id,
        source=RefundSource.CUSTOMER,
    )
    return order, facts


async def state(sessionmaker: Sessions, order: Order, refund_no: str) -> tuple[object, ...]:
    async with sessionmaker() as session:
        row = await session.get(Order, order.id)
        refund = await session.scalar(select(Refund).where(Refund.refund_no == refund_no))
        assert row is not None and refund is not None
        return refund.status, row.reserved_amount, row.refunded_amount


def resolved_failed(facts: RefundFacts, confirm: bool = True) -> Step:
    return Step(
        facts,
        "ops-1",
        "resolved_failed",
        {"note": "no money went back"},
        to_status=S.FAILED,
        confirm_gateway_not_paying=confirm,
    )


@pytest.mark.parametrize(
    ("heard", "refusal"),
    [
        ("processing", "GatewayRefundPending"),
        ("abnormal", "GatewayRefundPending"),
        ("succeeded", "GatewayReportedSuccess"),
    ],
)
async def test_ops_failed_is_refused_under_the_row_lock_while_the_gateway_paid_or_may_pay(
    sessionmaker: Sessions, heard: str, refusal: str
) -> None:
    order, facts = await a_refund(sessionmaker, 3000, S.ABNORMAL, heard)
    with pytest.raises(ApplicationError) as refused:
        await LedgerActivities(sessionmaker).record_step(resolved_failed(facts))
    assert (refused.value.type, refused.value.non_retryable) == (refusal, True)
    assert await state(sessionmaker, order, facts.refund_no) == ("abnormal", 3000, 0)


@pytest.mark.parametrize("heard", [None, "failed"])
async def test_ops_failed_releases_the_amount_when_the_gateway_holds_nothing_unfinished(
    sessionmaker: Sessions, heard: str | None
) -> None:
    order, facts = await a_refund(sessionmaker, 3000, S.ABNORMAL, heard)
    row = await LedgerActivities(sessionmaker).record_step(resolved_failed(facts))
    assert row.status == S.FAILED
    assert await state(sessionmaker, order, facts.refund_no) == ("failed", 0, 0)


async def test_a_step_of_older_runs_without_the_check_moves_as_it_did(
    sessionmaker: Sessions,
) -> None:
    order, facts = await a_refund(sessionmaker, 3000, S.ABNORMAL, "processing")
    await LedgerActivities(sessionmaker).record_step(resolved_failed(facts, confirm=False))
    assert await state(sessionmaker, order, facts.refund_no) == ("failed", 0, 0)


def reopened(facts: RefundFacts) -> Step:
    return Step(facts, "gateway", "gateway_succeeded_after_failure", {}, to_status=S.ABNORMAL)


async def test_a_failed_refund_reopened_by_a_late_success_counts_its_amount_again(
    sessionmaker: Sessions,
) -> None:
    order, facts = await a_refund(sessionmaker, 2500, S.FAILED, "succeeded")
    row = await LedgerActivities(sessionmaker).record_step(reopened(facts))
    assert row.status == S.ABNORMAL
    assert await state(sessionmaker, order, facts.refund_no) == ("abnormal", 2500, 0)


async def test_a_reopen_beyond_what_was_paid_is_refused_as_a_business_error(
    sessionmaker: Sessions,
) -> None:
    order, facts = await a_refund(sessionmaker, 2500, S.FAILED, "succeeded")
    async with sessionmaker.begin() as session:  # another refund took the released amount
        await session.execute(update(Order).where(Order.id == order.id).values(reserved_amount=1))
    with pytest.raises(ApplicationError) as refused:
        await LedgerActivities(sessionmaker).record_step(reopened(facts))
    assert (refused.value.type, refused.value.non_retryable) == ("RefundExceedsPaid", True)
    assert await state(sessionmaker, order, facts.refund_no) == ("failed", 1, 0)
