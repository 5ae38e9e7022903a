"""The console over plain HTTP (issue 12): the session cookie's attributes, CSRF refusals,
an expired session that keeps the form, what a customer may open, the lost race explained."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.console.session import COOKIE, SIGN_IN_COOKIE
from tests.api.console_support import (
    bearer,
    console_api,
    csrf_of,
    expire,
    session_cookie,
    sign_in,
    signed_in,
)
from tests.factories import Shop, uid
from tests.stack import Stack

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    return console_api(stack)


@pytest_asyncio.fixture
async def approver(stack: Stack, console_url: str) -> AsyncIterator[httpx.AsyncClient]:
    http = await signed_in(console_url, bearer(stack, uid("approver"), "approver"))
    yield http
    await http.aclose()


async def pending_refund(shop: Shop, amount: int = 3000) -> tuple[dict, dict]:
    order = await shop.order("stripe", 10000)
    return order, await shop.refund(order, amount)


async def test_sign_in_sets_an_httponly_samesite_strict_session_cookie(
    stack: Stack, console_url: str
) -> None:
    async with httpx.AsyncClient(base_url=console_url, timeout=60) as http:
        response = await sign_in(http, bearer(stack, uid("approver"), "approver"))
        assert response.status_code == 303
        assert response.headers["location"] == "/console/inbox"
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")
        )
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/console"} <= attributes
        assert "secure" not in attributes  # plain http on this machine; https sets it
        inbox = await http.get("/console/inbox")
        assert inbox.status_code == 200 and "Approvals inbox" in inbox.text


async def test_sign_in_without_its_csrf_cookie_is_refused(stack: Stack, console_url: str) -> None:
    async with httpx.AsyncClient(base_url=console_url, timeout=60) as http:
        page = await http.get("/console/sign-in")
        http.cookies.delete(SIGN_IN_COOKIE)
        token = bearer(stack, uid("approver"), "approver")
        refused = await http.post(
            "/console/sign-in", data={"csrf": csrf_of(page.text), "token": token}
        )
        assert refused.status_code == 403
        assert "csrf_token_invalid" in refused.text
        assert COOKIE not in refused.cookies


async def test_a_bad_token_stays_on_sign_in_with_the_reason(console_url: str) -> None:
    async with httpx.AsyncClient(base_url=console_url, timeout=60) as http:
        response = await sign_in(http, "not-a-token")
        assert response.status_code == 401
        assert "invalid token" in response.text


async def test_a_decision_without_csrf_token_is_refused_and_changes_nothing(
    shop: Shop, approver: httpx.AsyncClient
) -> None:
    _, refund = await pending_refund(shop)
    no = refund["refund_no"]
    for form, code in (
        ({"action": "approve", "note": "ok"}, "csrf_token_missing"),
        ({"action": "approve", "note": "ok", "csrf": "forged"}, "csrf_token_invalid"),
    ):
        response = await approver.post(f"/console/refunds/{no}/decision", data=form)
        assert response.status_code == 403, response.text
        assert code in response.text
    await asyncio.sleep(0.5)
    assert (await shop.get_refund(no))["status"] == "pending_approval"


async def test_a_json_post_to_a_console_form_is_refused(
    shop: Shop, approver: httpx.AsyncClient
) -> None:
    _, refund = await pending_refund(shop)
    response = await approver.post(
        f"/console/refunds/{refund['refund_no']}/decision", json={"action": "approve"}
    )
    assert response.status_code == 415
    assert (await shop.get_refund(refund["refund_no"]))["status"] == "pending_approval"


async def test_an_expired_session_sends_a_page_to_sign_in_with_next(
    approver: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await expire(sessionmaker, session_cookie(approver))
    response = await approver.get("/console/inbox", params={"channel": "stripe"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=/console/inbox%3Fchannel%3Dstripe"


async def test_an_expired_session_keeps_the_note_through_sign_in(
    stack: Stack, shop: Shop, console_url: str, sessionmaker: Sessions
) -> None:
    _, refund = await pending_refund(shop)
    no = refund["refund_no"]
    token = bearer(stack, uid("approver"), "approver")
    http = await signed_in(console_url, token)
    page = await http.get(f"/console/refunds/{no}")
    csrf = csrf_of(page.text)
    await expire(sessionmaker, session_cookie(http))

    form = {
        "csrf": csrf,
        "form_id": f"decide:{no}",
        "return_to": f"/console/refunds/{no}",
        "action": "reject",
        "note": "duplicate of an earlier refund",
    }
    again = await http.post(f"/console/refunds/{no}/decision", data=form)
    assert again.status_code == 401
    assert "What you typed is kept" in again.text
    assert "duplicate of an earlier refund" in again.text
    draft = re.search(r'name="draft" value="([^"]+)"', again.text)
    assert draft

    back = await http.post(
        "/console/sign-in",
        data={
            "csrf": csrf_of(again.text),
            "token": token,
            "next": f"/console/refunds/{no}",
            "draft": html.unescape(draft.group(1)),
        },
    )
    assert back.status_code == 303 and back.headers["location"] == f"/console/refunds/{no}"
    refilled = await http.get(f"/console/refunds/{no}")
    assert ">duplicate of an earlier refund</textarea>" in refilled.text
    assert (await shop.get_refund(no))["status"] == "pending_approval"  # nothing was sent
    await http.aclose()


async def test_a_customer_cannot_open_another_customers_refund(
    stack: Stack, shop: Shop, console_url: str
) -> None:
    _, refund = await pending_refund(shop)
    no = refund["refund_no"]
    owner = await signed_in(console_url, bearer(stack, shop.customer_id, "customer"))
    other = await signed_in(console_url, bearer(stack, uid("cust"), "customer"))
    try:
        assert (await owner.get(f"/console/refunds/{no}")).status_code == 200
        mine = await owner.get("/console/my-refunds")
        assert no in mine.text
        for path in (f"/console/refunds/{no}", f"/console/orders/{refund['order_no']}"):
            refused = await other.get(path)
            assert refused.status_code == 404, path
            assert "Not found" in refused.text
            assert shop.customer_id not in refused.text  # nothing of the owner's shows
        assert no not in (await other.get("/console/my-refunds")).text
        assert (await other.get("/console/inbox")).status_code == 403
        found = await other.get("/console/search", params={"q": no})
        assert found.status_code == 404
    finally:
        await owner.aclose()
        await other.aclose()


async def test_a_decision_that_lost_the_race_says_who_won(
    stack: Stack, shop: Shop, approver: httpx.AsyncClient
) -> None:
    _, refund = await pending_refund(shop)
    no = refund["refund_no"]
    page = await approver.get("/console/inbox")
    assert no in page.text
    winner = await shop.approve(no)  # another approver, through the JSON API
    assert winner.status_code == 200

    form = {
        "csrf": csrf_of(page.text),
        "form_id": f"decide:{no}",
        "return_to": "/console/inbox",
        "action": "reject",
        "note": "too late",
    }
    response = await approver.post(f"/console/refunds/{no}/decision", data=form)
    assert response.status_code == 303
    told = await approver.get("/console/inbox")
    assert "was not recorded: approved by " in told.text
    assert (await shop.wait_status(no, "succeeded"))["approved_by"]


async def test_the_live_answer_counts_what_waits(
    stack: Stack, shop: Shop, console_url: str
) -> None:
    me = uid("approver")
    http = await signed_in(console_url, bearer(stack, me, "approver"))
    try:
        before = (await http.get("/console/live")).json()
        await pending_refund(shop)
        after = (await http.get("/console/live")).json()
        assert after["waiting"] >= before["waiting"] + 1
        assert after["version"] != before["version"]
    finally:
        await http.aclose()
    anonymous = httpx.get(f"{console_url}/console/live", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json() == {"signed_in": False}


async def test_an_approval_s_message_to_the_customer_reaches_them_and_its_note_does_not(
    stack: Stack, shop: Shop, approver: httpx.AsyncClient, console_url: str
) -> None:
    _, refund = await pending_refund(shop)
    no = refund["refund_no"]
    page = await approver.get(f"/console/refunds/{no}")
    assert 'name="customer_message"' in page.text
    form = {
        "csrf": csrf_of(page.text),
        "form_id": f"decide:{no}",
        "return_to": f"/console/refunds/{no}",
        "action": "approve",
        "note": "regular customer, photos checked",
        "customer_message": "Approved, thank you for the photos.",
    }
    response = await approver.post(f"/console/refunds/{no}/decision", data=form)
    assert response.status_code == 303
    await shop.wait_status(no, "succeeded")
    staff_page = html.unescape((await approver.get(f"/console/refunds/{no}")).text)
    assert "regular customer, photos checked" in staff_page
    customer = await signed_in(console_url, bearer(stack, shop.customer_id, "customer"))
    try:
        mine = html.unescape((await customer.get(f"/console/refunds/{no}")).text)
    finally:
        await customer.aclose()
    assert "Approved, thank you for the photos." in mine
    assert "regular customer, photos checked" not in mine
    assert "approver-" not in mine  # the approver's subject: they are "the shop"
    assert 'data-status="succeeded"' in mine
