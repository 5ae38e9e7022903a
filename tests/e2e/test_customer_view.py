"""What a refund's customer reads, through the real stack: the JSON API and the console show
them the moves of their refund and the shop's messages to them, never who in the shop decided,
the staff's notes or the gateway's answers; staff read all of it as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest

from tests.api.console_support import bearer, console_api, signed_in
from tests.e2e.support import api_with
from tests.factories import Shop, stripe_fault, uid
from tests.stack import Stack

STAFF_NOTE = "checked the CCTV footage"
OPS_NOTE = "settled offline via wire ref W-77"
TO_CUSTOMER_ON_APPROVAL = "Approved: your money is on its way."
TO_CUSTOMER_ON_RESOLUTION = "We have paid you back by bank transfer."


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    return console_api(stack)


def sub_of(headers: dict[str, str]) -> str:
    """The principal id a test token names (its `sub`, HS256: the bare subject)."""
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def resolved_by_ops(shop: Shop, order: dict[str, Any], refund_no: str) -> None:
    """Requested by the customer, approved with a staff note, abnormal (Stripe never answers),
    resolved `succeeded` by ops with a note; each decision with a message to the customer."""
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    async with api_with(shop, outcome_deadline=timedelta(seconds=3)) as api:
        body = {"order_no": order["order_no"], "amount": 2000, "refund_no": refund_no}
        applied = await api.post("/v1/refunds", headers=shop.customer, json=body)
        assert applied.status_code == 202, applied.text
    approved = await shop.http.post(
        f"/v1/refunds/{refund_no}/approve",
        headers=shop.approver,
        json={"note": STAFF_NOTE, "customer_message": TO_CUSTOMER_ON_APPROVAL},
    )
    assert approved.status_code == 200, approved.text
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    resolved = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve",
        headers=shop.ops,
        json={
            "outcome": "succeeded",
            "note": OPS_NOTE,
            "customer_message": TO_CUSTOMER_ON_RESOLUTION,
        },
    )
    assert resolved.status_code == 200, resolved.text
    await shop.wait_status(refund_no, "succeeded")


def assert_nothing_of_the_shop(text: str, staff: dict[str, Any], shop: Shop) -> None:
    """None of what the staff's view holds beyond the customer's shows in `text`."""
    secrets = [
        sub_of(shop.approver),
        sub_of(shop.ops),
        STAFF_NOTE,
        OPS_NOTE,
        staff["gateway_refund_id"],
        "approved_by",
        "gateway",
        "pending_forever",
        "outcome_deadline",
        "workflow",
        "fingerprint",
    ]
    for secret in secrets:
        assert secret and secret not in text, secret


async def test_a_customer_reads_no_staff_subject_note_or_gateway_answer_while_staff_read_all(
    shop: Shop,
) -> None:
    order = await shop.order(amount=2000)
    refund_no = uid("rf")
    await resolved_by_ops(shop, order, refund_no)

    staff = await shop.get_refund(refund_no)
    staff_text = str(staff)
    assert sub_of(shop.approver) == staff["approved_by"]
    for shown in (STAFF_NOTE, OPS_NOTE, sub_of(shop.ops), "gateway_submitted"):
        assert shown in staff_text, shown
    assert staff["gateway_refund_id"].startswith("re_")

    mine = await shop.http.get(f"/v1/refunds/{refund_no}", headers=shop.customer)
    assert mine.status_code == 200, mine.text
    assert_nothing_of_the_shop(mine.text, staff, shop)
    refund = mine.json()
    assert (refund["amount"], refund["currency"]) == (2000, "USD")
    assert (refund["status"], refund["customer_status"]) == ("succeeded", "refunded")
    assert (refund["requested_by"], refund["reason"]) == ("you", "")
    assert refund["message"] == TO_CUSTOMER_ON_RESOLUTION
    assert refund["completed_at"] is not None
    lines = refund["timeline"]
    assert {line["by"] for line in lines} == {"you", "the shop"}
    assert [line["message"] for line in lines if line["message"]] == [
        TO_CUSTOMER_ON_APPROVAL,
        TO_CUSTOMER_ON_RESOLUTION,
    ]
    assert [line["customer_status"] for line in lines if not line["message"]] == [
        "requested",
        "in_progress",
        "refunded",
    ]
    assert set(lines[0]) == {"at", "by", "status", "customer_status", "message"}

    order_mine = await shop.http.get(f"/v1/orders/{order['order_no']}", headers=shop.customer)
    assert order_mine.status_code == 200, order_mine.text
    assert_nothing_of_the_shop(order_mine.text, staff, shop)
    assert order["payment_ref"] not in order_mine.text
    seen = order_mine.json()
    assert (seen["refunded_amount"], seen["refundable_amount"]) == (2000, 0)
    assert "reserved_amount" not in seen and "user_id" not in seen
    [listed] = seen["refunds"]
    assert (listed["refund_no"], listed["customer_status"]) == (refund_no, "refunded")
    staff_order = await shop.get_order(order["order_no"])
    assert staff_order["refunds"][0]["approved_by"] == staff["approved_by"]


async def test_the_console_shows_a_customer_only_their_view(shop: Shop, console_url: str) -> None:
    order = await shop.order(amount=2000)
    refund_no = uid("rf")
    await resolved_by_ops(shop, order, refund_no)
    staff = await shop.get_refund(refund_no)
    customer = await signed_in(console_url, bearer(shop.stack, shop.customer_id, "customer"))
    ops = await signed_in(console_url, bearer(shop.stack, sub_of(shop.ops), "ops"))
    try:
        for path in (
            f"/console/refunds/{refund_no}",
            f"/console/orders/{order['order_no']}",
            "/console/my-refunds",
        ):
            page = await customer.get(path)
            assert page.status_code == 200, path
            assert_nothing_of_the_shop(page.text, staff, shop)
            assert order["payment_ref"] not in page.text
            assert 'data-status="succeeded"' in page.text and "refunded" in page.text
        page = await customer.get(f"/console/refunds/{refund_no}")
        assert TO_CUSTOMER_ON_APPROVAL in page.text and TO_CUSTOMER_ON_RESOLUTION in page.text
        theirs = await ops.get(f"/console/refunds/{refund_no}")
        assert STAFF_NOTE in theirs.text and OPS_NOTE in theirs.text
        assert staff["gateway_refund_id"] in theirs.text
    finally:
        await customer.aclose()
        await ops.aclose()


async def test_a_rejection_reason_is_the_customers_message_and_others_still_get_404(
    shop: Shop,
) -> None:
    order = await shop.order(amount=3000)
    refund = await shop.refund(order, 1000, reason="the box came dented")
    assert (refund["requested_by"], refund["customer_status"]) == ("you", "requested")
    assert "approved_by" not in refund and "channel" not in refund
    no = refund["refund_no"]
    reason = "Dents are not covered: see our return policy."
    rejected = await shop.http.post(
        f"/v1/refunds/{no}/reject", headers=shop.approver, json={"reason": reason}
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approved_by"] is None  # staff read the shop's model
    mine = (await shop.http.get(f"/v1/refunds/{no}", headers=shop.customer)).json()
    assert (mine["status"], mine["customer_status"]) == ("rejected", "rejected")
    assert (mine["message"], mine["reason"]) == (reason, "the box came dented")
    assert mine["timeline"][-1] == {**mine["timeline"][-1], "by": "the shop", "message": reason}
    assert sub_of(shop.approver) not in str(mine)
    order_seen = (await shop.get_order(order["order_no"]))["refundable_amount"]
    assert order_seen == 3000  # the reservation is released

    stranger = shop.stack.token(uid("cust"), "customer")
    for path in (f"/v1/refunds/{no}", f"/v1/orders/{order['order_no']}"):
        refused = await shop.http.get(path, headers=stranger)
        assert refused.status_code == 404, path
        assert "dented" not in refused.text and "amount" not in refused.text
