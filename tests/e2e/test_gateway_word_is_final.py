"""No person's decision contradicts what the gateway said or may still say, and a gateway's word
about a refund that is not ours never moves ours.

Ops resolving `failed` release the amount, so they may do it only once the gateway, asked at
that moment, holds no unfinished or paid refund under the refund_no (re-checked under the
refund's row lock where the step commits). A success the gateway reports after the ledger failed
the refund (a create still in flight when ops resolved it) is never dropped: the refund reopens
and the money is counted.
"""

from __future__ import annotations

import asyncio

import stripe
from temporalio.client import Client

from tests.e2e.support import (
    Sessions,
    clear_stripe_faults,
    restorations,
    stripe_refunds,
    stripe_request_fault,
    timeline,
)
from tests.e2e.test_gateway_silence_and_abnormal import HASTY, request_and_approve
from tests.factories import Shop, events, sandbox, stripe_fault, uid, wait_event
from workflows.refund import workflow_id


def foreign_stripe_refund(shop: Shop, refund_no: str, payment_ref: str, amount: int) -> None:
    """A refund another system of the merchant makes at Stripe, carrying our refund_no."""
    settings = shop.stack.settings
    assert settings.stripe_api_key is not None
    client = stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": shop.stack.stripe_url}
    )
    client.v1.refunds.create(
        params={
            "payment_intent": payment_ref,
            "amount": amount,
            "metadata": {"refund_no": refund_no},
        }
    )


async def resolve_failed(shop: Shop, refund_no: str) -> tuple[int, str | None]:
    response = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve",
        headers=shop.ops,
        json={"outcome": "failed", "note": "no money went back"},
    )
    code = response.json()["error"]["code"] if response.status_code >= 400 else None
    return response.status_code, code


def order_money(order: dict) -> tuple[int, int, int]:
    return order["refunded_amount"], order["reserved_amount"], order["refundable_amount"]


async def test_ops_cannot_fail_a_refund_stripe_still_has_pending_and_its_later_success_counts(
    shop: Shop, sessionmaker: Sessions
) -> None:
    order = await shop.order(amount=5000)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await request_and_approve(shop, order, 5000, refund_no, **HASTY)
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "outcome_deadline_passed" in events(abnormal)
    assert await resolve_failed(shop, refund_no) == (409, "gateway_refund_pending")
    still = await shop.get_refund(refund_no)
    assert still["status"] == "abnormal" and "resolved_failed" not in events(still)
    assert order_money(await shop.get_order(order["order_no"])) == (0, 5000, 0)
    # The gateway pays at last: the refund the ledger kept reserved succeeds, once.
    [at_gateway] = await stripe_refunds(shop, refund_no)
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{at_gateway['id']}/succeed")
    await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert order_money(await shop.get_order(order["order_no"])) == (5000, 5000, 0)
    assert len(await restorations(sessionmaker, refund_no)) == 3


async def test_resolve_failed_when_the_gateway_cannot_be_asked_is_503_and_changes_nothing(
    shop: Shop,
) -> None:
    order = await shop.order(amount=2200)
    refund_no = uid("rf")
    # Every create fails until the deadline: abnormal, with no answer heard from the gateway.
    await stripe_request_fault(
        shop, action="http_500", method="POST", path_prefix="/v1/refunds", times=10_000
    )
    try:
        await request_and_approve(shop, order, 2200, refund_no, **HASTY)
        abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
        assert "gateway_unreachable" in events(abnormal)
        await stripe_request_fault(
            shop, action="http_500", method="GET", path_prefix="/v1/refunds", times=10_000
        )
        assert await resolve_failed(shop, refund_no) == (503, "gateway_unconfirmed")
        assert (await shop.get_refund(refund_no))["status"] == "abnormal"
        assert order_money(await shop.get_order(order["order_no"])) == (0, 2200, 0)
    finally:
        await clear_stripe_faults(shop)
    # Asked again once it answers: no refund under our refund_no, so `failed` is the truth.
    assert await resolve_failed(shop, refund_no) == (200, None)
    failed = await shop.wait_status(refund_no, "failed")
    assert "resolved_failed" in events(failed)
    assert order_money(await shop.get_order(order["order_no"])) == (0, 0, 2200)
    assert await stripe_refunds(shop, refund_no) == []


async def test_a_success_after_ops_failed_the_refund_reopens_it_and_counts_the_money(
    shop: Shop, sessionmaker: Sessions
) -> None:
    """The create is held in the network past the outcome deadline; ops ask, Stripe has no
    refund yet, they resolve `failed`; then the create lands and Stripe pays it."""
    order = await shop.order(amount=4100, points_used=41)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "timeout", delay=15)
    await request_and_approve(shop, order, 4100, refund_no, **HASTY)
    abnormal = await shop.wait_status(refund_no, "abnormal", timeout=30)
    assert "gateway_unreachable" in events(abnormal)
    assert await stripe_refunds(shop, refund_no) == []
    assert await resolve_failed(shop, refund_no) == (200, None)
    await shop.wait_status(refund_no, "failed")
    assert order_money(await shop.get_order(order["order_no"])) == (0, 0, 4100)
    # The held create does its work at Stripe, which pays it and tells us.
    done = await shop.wait_status(refund_no, "succeeded", timeout=60)
    story = events(done)
    assert story.index("resolved_failed") < story.index("gateway_succeeded_after_failure")
    assert story.index("gateway_succeeded_after_failure") < story.index("succeeded")
    [reopened] = timeline(done, "gateway_succeeded_after_failure")
    assert (reopened["detail"]["from"], reopened["detail"]["to"]) == ("failed", "abnormal")
    after = await shop.get_order(order["order_no"])
    assert order_money(after) == (4100, 4100, 0)
    assert after["restored_points"] == 41
    assert len(await restorations(sessionmaker, refund_no)) == 3
    assert [r["status"] for r in await stripe_refunds(shop, refund_no)] == ["succeeded"]


async def test_a_foreign_refunds_failure_never_reopens_our_succeeded_refund(
    shop: Shop, temporal: Client
) -> None:
    ours = await shop.order(amount=1500)
    theirs = await shop.order(amount=9000)
    refund_no = uid("rf")
    await shop.refund(ours, 1500, refund_no=refund_no)
    assert (await shop.approve(refund_no)).status_code == 200
    await shop.wait_status(refund_no, "succeeded")
    run_before = (await temporal.get_workflow_handle(workflow_id(refund_no)).describe()).run_id
    # Another system refunds another payment under our refund_no, and that refund fails.
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await asyncio.to_thread(foreign_stripe_refund, shop, refund_no, theirs["payment_ref"], 700)
    [foreign] = [
        r
        for r in await stripe_refunds(shop, refund_no)
        if r["payment_intent"] == theirs["payment_ref"]
    ]
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{foreign['id']}/fail")
    heard = await wait_event(shop, refund_no, "gateway_notification")
    for _ in range(100):
        if any(
            e["detail"]["gateway_status"] == "failed"
            for e in timeline(heard, "gateway_notification")
        ):
            break
        await asyncio.sleep(0.2)
        heard = await shop.get_refund(refund_no)
    else:
        raise AssertionError(f"the foreign failure never reached the API: {events(heard)}")
    await asyncio.sleep(2)  # room for a wrongly reopened run to act
    after = await shop.get_refund(refund_no)
    assert after["status"] == "succeeded"
    assert "gateway_failed_after_success" not in events(after)
    assert order_money(await shop.get_order(ours["order_no"])) == (1500, 1500, 0)
    described = await temporal.get_workflow_handle(workflow_id(refund_no)).describe()
    assert described.run_id == run_before


async def test_a_happy_refund_takes_no_patched_branch_and_stays_within_30_events(
    shop: Shop, temporal: Client
) -> None:
    """The new rules cost the happy path nothing: each patch is asked only on its branch."""
    order = await shop.order(amount=1000)
    refund = await shop.refund(order, 1000)
    assert (await shop.approve(refund["refund_no"])).status_code == 200
    await shop.wait_status(refund["refund_no"], "succeeded")
    handle = temporal.get_workflow_handle(workflow_id(refund["refund_no"]))
    await handle.result()
    history = [event async for event in handle.fetch_history_events()]
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert "core_patch" not in markers, markers
    assert len(history) <= 30, len(history)


async def test_a_foreign_refund_heard_while_ours_is_processing_changes_nothing_of_ours(
    shop: Shop,
) -> None:
    """Found by `refunds chaos`: a foreign refund's webhook made ours abnormal and hid its own
    success from then on; now ours goes on as if the foreign one did not exist."""
    ours = await shop.order(amount=2600)
    theirs = await shop.order(amount=8000)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await shop.refund(ours, 2600, refund_no=refund_no)
    assert (await shop.approve(refund_no)).status_code == 200
    await wait_event(shop, refund_no, "gateway_submitted")
    await asyncio.to_thread(foreign_stripe_refund, shop, refund_no, theirs["payment_ref"], 900)
    [foreign] = [
        r
        for r in await stripe_refunds(shop, refund_no)
        if r["payment_intent"] == theirs["payment_ref"]
    ]
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{foreign['id']}/fail")
    await asyncio.sleep(2)  # its webhooks reach the API and the run
    still = await shop.get_refund(refund_no)
    assert still["status"] == "processing", events(still)
    [mine] = [
        r
        for r in await stripe_refunds(shop, refund_no)
        if r["payment_intent"] == ours["payment_ref"]
    ]
    await sandbox(shop.stack.stripe_url, "POST", f"/_sandbox/refunds/{mine['id']}/succeed")
    done = await shop.wait_status(refund_no, "succeeded", timeout=30)
    assert "gateway_refund_mismatch" not in events(done)
    assert order_money(await shop.get_order(ours["order_no"])) == (2600, 2600, 0)
