"""A cancelled order that is owed money still takes refunds (issue 8 §7).

Fully refunded, cancelled, then the refund fails late and ops resolve it `failed`: the customer is
owed the whole amount again, and a new refund of it must go through.
"""

from __future__ import annotations

from tests.factories import Shop, stripe_fault, uid


async def test_cancelled_order_whose_refund_failed_late_is_refunded_again(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "fail_after_success", after=6)
    await shop.refund(order, 3000, refund_no=refund_no)
    assert (await shop.approve(refund_no)).status_code == 200
    await shop.wait_status(refund_no, "succeeded")
    cancelled = await shop.http.post(
        f"/v1/orders/{order['order_no']}/cancel", headers=shop.customer
    )
    assert cancelled.status_code == 200, cancelled.text
    await shop.wait_status(refund_no, "abnormal", timeout=30)
    resolved = await shop.http.post(
        f"/v1/refunds/{refund_no}/resolve", headers=shop.ops, json={"outcome": "failed"}
    )
    assert resolved.status_code == 200, resolved.text
    await shop.wait_status(refund_no, "failed")
    owed = await shop.get_order(order["order_no"])
    assert (owed["status"], owed["refunded_amount"], owed["refundable_amount"]) == (
        "cancelled",
        0,
        3000,
    )

    too_much = await shop.request_refund(order, 3001)
    assert too_much.status_code == 409
    assert too_much.json()["error"]["code"] == "refund_exceeds_refundable"
    again = await shop.refund(order, 3000)
    assert (await shop.approve(again["refund_no"])).status_code == 200
    await shop.wait_status(again["refund_no"], "succeeded")
    done = await shop.get_order(order["order_no"])
    assert (done["status"], done["refunded_amount"], done["refundable_amount"]) == (
        "cancelled",
        3000,
        0,
    )
