"""What a customer reads of a refund's timeline, over every status and each kind of entry: the
moves of its status by "you" or "the shop", a rejection's reason and a decision's customer
message; nothing else of any entry's detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refunds.domain.customer_view import (
    CUSTOMER_STATUS,
    CustomerActor,
    CustomerEntry,
    CustomerStatus,
    actor_for,
    customer_entry,
    customer_message_detail,
    customer_timeline,
)
from refunds.domain.messages import RefundStatus

ME = "cust-1"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
YOU, SHOP = CustomerActor.YOU, CustomerActor.SHOP


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def move(frm: RefundStatus, to: RefundStatus, **detail: Any) -> dict[str, Any]:
    return {**detail, "from": frm.value, "to": to.value}


def test_every_refund_status_has_a_customer_status_and_abnormal_is_in_progress() -> None:
    assert set(CUSTOMER_STATUS) == set(RefundStatus)
    assert CUSTOMER_STATUS[RefundStatus.ABNORMAL] == CustomerStatus.IN_PROGRESS
    assert CUSTOMER_STATUS[RefundStatus.SUCCEEDED] == CustomerStatus.REFUNDED


@pytest.mark.parametrize(
    ("actor", "seen"),
    [(ME, YOU), ("approver-7", SHOP), ("gateway", SHOP), ("system", SHOP), ("policy", SHOP)],
)
def test_only_the_customer_is_you_everyone_else_is_the_shop(actor: str, seen: str) -> None:
    assert actor_for(actor, ME) == seen


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        ("gateway_submitted", {"gateway_refund_id": "re_1", "gateway_status": "pending"}),
        ("gateway_polled", {"gateway_status": "pending"}),
        ("gateway_notification", {"event_id": "evt_1", "gateway_status": "succeeded"}),
        ("gateway_lookup_failed", {"error": "http 500"}),
        ("points_restored", {"points": 90}),
        ("auto_approval_declined", {"limit": 5000}),
        ("reconciliation_found", {"reason": "the gateway has a refund"}),
    ],
)
def test_entries_that_are_not_moves_or_messages_are_the_shops_internals(
    event: str, detail: dict[str, Any]
) -> None:
    assert customer_entry(T0, "gateway", event, detail, ME) is None


def test_a_move_shows_its_status_and_no_detail_but_a_rejections_reason() -> None:
    approved = move(RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING, note="CCTV checked")
    assert customer_entry(T0, "approver-7", "approved", approved, ME) == CustomerEntry(
        T0, SHOP, RefundStatus.PROCESSING
    )
    rejected = move(RefundStatus.PENDING_APPROVAL, RefundStatus.REJECTED, reason="Used item")
    assert customer_entry(T0, "approver-7", "rejected", rejected, ME) == CustomerEntry(
        T0, SHOP, RefundStatus.REJECTED, "Used item"
    )
    resolved = move(RefundStatus.ABNORMAL, RefundStatus.SUCCEEDED, note="bank transfer W-7")
    entry = customer_entry(T0, "ops-1", "resolved_succeeded", resolved, ME)
    assert entry == CustomerEntry(T0, SHOP, RefundStatus.SUCCEEDED)


def test_a_customer_message_is_shown_with_the_status_it_was_written_at() -> None:
    detail = customer_message_detail("On its way", RefundStatus.PROCESSING)
    assert customer_entry(T0, "approver-7", "customer_message", detail, ME) == CustomerEntry(
        T0, SHOP, RefundStatus.PROCESSING, "On its way"
    )


def test_a_timeline_reads_as_the_customers_story_without_repeats() -> None:
    P, R, A = RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING, RefundStatus.ABNORMAL
    S = RefundStatus.SUCCEEDED
    entries = [
        (at(0), ME, "requested", {"amount": 2000, "reason": "broken"}),
        (at(1), "approver-7", "approved", move(P, R, note="CCTV")),
        (at(2), "approver-7", "customer_message", customer_message_detail("On its way", R)),
        (at(3), "gateway", "gateway_submitted", {"gateway_refund_id": "re_1"}),
        (at(4), "system", "outcome_deadline_passed", move(R, A)),
        (at(5), "ops-1", "resolved_succeeded", move(A, S, note="wire W-7")),
        (at(6), "ops-1", "customer_message", customer_message_detail("Paid by transfer", S)),
    ]
    assert customer_timeline(entries, ME) == [
        CustomerEntry(at(0), YOU, P),
        CustomerEntry(at(1), SHOP, R),
        CustomerEntry(at(2), SHOP, R, "On its way"),
        CustomerEntry(at(5), SHOP, S),
        CustomerEntry(at(6), SHOP, S, "Paid by transfer"),
    ]
