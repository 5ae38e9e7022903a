"""The console as approvers, ops and customers use it (issue 12): headless Chromium against the
real stack (PostgreSQL, Temporal, sandboxes, API, worker). Every page is saved as a screenshot
under the test's tmp dir; the money and the ledger are checked where a click moves them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.console.session import COOKIE
from tests.api.console_support import TEMPORAL_UI, bearer, console_api, expire
from tests.e2e.support import api_with
from tests.factories import Shop, events, stripe_fault, uid
from tests.stack import Stack

Sessions = async_sessionmaker[AsyncSession]
WIDE = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    return console_api(stack)


@pytest_asyncio.fixture
async def context(browser: Browser, console_url: str) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(base_url=console_url, viewport=WIDE)
    yield made
    await made.close()


async def sign_in(context: BrowserContext, token: str, shots: Path, name: str) -> Page:
    """The production way: paste a token into the sign-in form."""
    page = await context.new_page()
    await page.goto("/console")
    await expect(page.get_by_role("heading", name="Sign in to the refunds console")).to_be_visible()
    await page.get_by_label("Token from your identity provider").fill(token)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await shot(page, shots, f"{name}-signed-in")
    return page


async def shot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def card(page: Page, refund_no: str) -> Any:
    return page.locator(f"#pending li.card[data-refund-no='{refund_no}']")


async def pending(shop: Shop, amount: int = 3000, **order: Any) -> tuple[dict, dict]:
    made = await shop.order(order.pop("channel", "stripe"), 10000, **order)
    return made, await shop.refund(made, amount, reason="arrived broken")


async def test_approver_approves_in_the_inbox_and_sees_it_succeed_live(
    context: BrowserContext, shop: Shop, tmp_path: Path
) -> None:
    order, refund = await pending(shop, 3000, channel="wechatpay")
    no = refund["refund_no"]
    page = await sign_in(context, bearer(shop.stack, uid("approver"), "approver"), tmp_path, "a")
    row = card(page, no)
    await expect(row).to_contain_text("¥30.00")  # CNY fen in its own format
    await expect(row).to_contain_text(order["order_no"])
    await expect(row).to_contain_text(shop.customer_id)
    await expect(row).to_contain_text("arrived broken")
    await expect(row).to_contain_text("Expires in")
    await shot(page, tmp_path, "inbox")

    await row.get_by_label("Note").fill("photo checks out")
    await row.get_by_role("button", name="Approve").click()
    await expect(page.locator("#flash")).to_contain_text(f"Approved {no}")
    await page.evaluate("window.__notReloaded = true")
    decided = page.locator(f"#decided tr[data-refund-no='{no}'] .status")
    await expect(decided).to_have_text("succeeded", timeout=30_000)  # without a reload
    assert await page.evaluate("window.__notReloaded === true")
    await shot(page, tmp_path, "inbox-after-approve")

    done = await shop.get_refund(no)
    assert done["status"] == "succeeded" and done["approved_by"].startswith("approver-")
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["reserved_amount"]) == (3000, 3000)


async def test_approver_rejects_with_a_note_and_the_reservation_is_released(
    context: BrowserContext, shop: Shop, tmp_path: Path
) -> None:
    order, refund = await pending(shop, 2500)
    no = refund["refund_no"]
    page = await sign_in(context, bearer(shop.stack, uid("approver"), "approver"), tmp_path, "r")
    await page.goto(f"/console/refunds/{no}")
    await expect(page.locator("#refund-facts")).to_contain_text("$25.00")  # USD cents as $
    reject = page.get_by_role("button", name="Reject")
    await reject.click()  # no note: refused, nothing sent
    await expect(page.locator("#flash")).to_contain_text("Write a note")
    assert (await shop.get_refund(no))["status"] == "pending_approval"

    await page.get_by_label("Note").fill("outside the return window")
    await reject.click()
    await expect(page.locator("#flash")).to_contain_text(f"Rejected {no}")
    await expect(page.locator("#refund-facts .status")).to_have_text("rejected")
    await expect(page.locator("#timeline")).to_contain_text("outside the return window")
    await shot(page, tmp_path, "refund-rejected")

    rejected = await shop.get_refund(no)
    assert rejected["status"] == "rejected"
    assert order["order_no"] and (await shop.get_order(order["order_no"]))["reserved_amount"] == 0


async def test_own_request_is_shown_but_refused_for_four_eyes(
    context: BrowserContext, shop: Shop, tmp_path: Path
) -> None:
    admin = uid("admin")
    order = await shop.order("stripe", 8000)
    made = await shop.request_refund(order, 1000, as_=shop.stack.token(admin, "admin"))
    assert made.status_code == 202, made.text
    no = made.json()["refund_no"]
    page = await sign_in(context, bearer(shop.stack, admin, "admin"), tmp_path, "4e")
    row = card(page, no)
    await expect(row).to_contain_text("You requested this refund")
    await expect(row).to_contain_text("four-eyes")
    await expect(row.get_by_role("button", name="Approve")).to_be_disabled()
    await shot(page, tmp_path, "four-eyes")

    # Past the disabled button (a stale page, a crafted form): the workflow still refuses.
    await row.locator("button, textarea").evaluate_all(
        "els => els.forEach(e => e.removeAttribute('disabled'))"
    )
    await row.get_by_role("button", name="Approve").click()
    await expect(page.locator("#flash")).to_contain_text("four-eyes rule")
    await shot(page, tmp_path, "four-eyes-refused")
    assert (await shop.get_refund(no))["status"] == "pending_approval"


async def test_two_approvers_deciding_at_once_one_sees_who_won(
    browser: Browser, console_url: str, shop: Shop, tmp_path: Path
) -> None:
    _, refund = await pending(shop, 4000)
    no = refund["refund_no"]
    subs = [uid("approver"), uid("approver")]
    contexts = [await browser.new_context(base_url=console_url, viewport=WIDE) for _ in subs]
    try:
        pages = [
            await sign_in(c, bearer(shop.stack, s, "approver"), tmp_path, f"race{i}")
            for i, (c, s) in enumerate(zip(contexts, subs, strict=True))
        ]
        for page, action in zip(pages, ("Approve", "Reject"), strict=True):
            row = card(page, no)
            await row.get_by_label("Note").fill(f"{action.lower()} at once")
        await asyncio.gather(
            card(pages[0], no).get_by_role("button", name="Approve").click(),
            card(pages[1], no).get_by_role("button", name="Reject").click(),
        )
        flashes = [await p.locator("#flash").inner_text() for p in pages]
        for i, page in enumerate(pages):
            await shot(page, tmp_path, f"race-{i}")
        won = [i for i, text in enumerate(flashes) if text.startswith(("Approved", "Rejected"))]
        assert len(won) == 1, flashes
        lost = flashes[1 - won[0]]
        assert "was not recorded" in lost and subs[won[0]] in lost, flashes
    finally:
        for made in contexts:
            await made.close()
    final = await shop.wait_status(no, "succeeded", "rejected")
    assert final["status"] == ("succeeded" if won == [0] else "rejected")


async def test_ops_resolve_an_abnormal_refund_from_the_queue(
    context: BrowserContext, shop: Shop, tmp_path: Path
) -> None:
    order = await shop.order("stripe", 5000)
    no = uid("rf")
    await stripe_fault(shop.stack, no, "pending_forever")
    await stripe_fault(shop.stack, no, "no_webhook")
    hasty = {"outcome_deadline": timedelta(seconds=4), "abnormal_poll_interval": timedelta(hours=1)}
    async with api_with(shop, **hasty) as api:
        body = {"order_no": order["order_no"], "amount": 5000, "refund_no": no}
        assert (await api.post("/v1/refunds", headers=shop.customer, json=body)).status_code == 202
    assert (await shop.approve(no)).status_code == 200
    await shop.wait_status(no, "abnormal", timeout=40)

    ops = uid("ops")
    page = await sign_in(context, bearer(shop.stack, ops, "ops"), tmp_path, "ops")
    await page.goto("/console/ops")
    row = page.locator(f"#abnormal li.card[data-refund-no='{no}']")
    await expect(row).to_contain_text("$50.00")
    await expect(row).to_contain_text("gateway submitted")
    await expect(row).to_contain_text("outcome deadline passed")
    link = row.get_by_role("link", name=f"refund-{no} in the Temporal UI")
    href = f"{TEMPORAL_UI}/namespaces/default/workflows/refund-{no}"
    await expect(link).to_have_attribute("href", href)
    await shot(page, tmp_path, "ops-queue")

    await row.get_by_label("Succeeded: paid back offline").check()
    await row.get_by_label("Note").fill("bank transfer TX-991 sent by finance")
    await row.get_by_role("button", name="Resolve").click()
    await expect(page.locator("#flash")).to_contain_text(f"Resolved {no}: succeeded")
    await page.goto(f"/console/refunds/{no}")
    await expect(page.locator("#refund-facts .status")).to_have_text("succeeded", timeout=30_000)
    await expect(page.locator("#timeline")).to_contain_text("bank transfer TX-991")
    await shot(page, tmp_path, "refund-resolved")

    done = await shop.wait_status(no, "succeeded", timeout=30)
    assert "resolved_succeeded" in events(done) or "resolved" in " ".join(events(done))
    assert (await shop.get_order(order["order_no"]))["refunded_amount"] == 5000


async def test_a_form_post_without_csrf_token_is_refused(
    context: BrowserContext, shop: Shop, tmp_path: Path
) -> None:
    _, refund = await pending(shop, 1200)
    no = refund["refund_no"]
    page = await sign_in(context, bearer(shop.stack, uid("approver"), "approver"), tmp_path, "c")
    # A form like the console's, without the hidden csrf field, posted from the console's page.
    await page.evaluate(
        """no => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = `/console/refunds/${no}/decision`;
            for (const [k, v] of [["action", "approve"], ["note", "forged"]]) {
                const input = document.createElement("input");
                input.name = k; input.value = v; form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        no,
    )
    await expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    await expect(page.locator("#error-code")).to_have_text("csrf_token_missing")
    await shot(page, tmp_path, "csrf-refused")
    await asyncio.sleep(0.5)
    assert (await shop.get_refund(no))["status"] == "pending_approval"


async def test_a_customer_sees_their_own_refunds_and_not_another_customers(
    browser: Browser, console_url: str, shop: Shop, tmp_path: Path
) -> None:
    _, refund = await pending(shop, 900)
    no = refund["refund_no"]
    mine = await browser.new_context(base_url=console_url, viewport=PHONE)
    other = await browser.new_context(base_url=console_url, viewport=WIDE)
    try:
        page = await sign_in(mine, bearer(shop.stack, shop.customer_id, "customer"), tmp_path, "m")
        await expect(page.locator(f"tr[data-refund-no='{no}']")).to_contain_text("$9.00")
        await shot(page, tmp_path, "my-refunds-phone")
        await page.get_by_role("link", name=no).click()
        status = page.locator("#refund-facts .status")
        await expect(status).to_have_text("requested")  # in the customer's words
        await expect(status).to_have_attribute("data-status", "pending_approval")
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        await shot(page, tmp_path, "my-refund-phone")

        stranger = await sign_in(other, bearer(shop.stack, uid("cust"), "customer"), tmp_path, "o")
        response = await stranger.goto(f"/console/refunds/{no}")
        assert response is not None and response.status == 404
        await expect(stranger.get_by_role("heading", name="Not found")).to_be_visible()
        await expect(stranger.locator("main")).not_to_contain_text(shop.customer_id)
        await shot(stranger, tmp_path, "other-customer-404")
    finally:
        await mine.close()
        await other.close()


async def test_an_expired_session_returns_to_sign_in_and_keeps_the_note(
    context: BrowserContext, shop: Shop, sessionmaker: Sessions, tmp_path: Path
) -> None:
    _, refund = await pending(shop, 1500)
    no = refund["refund_no"]
    token = bearer(shop.stack, uid("approver"), "approver")
    page = await sign_in(context, token, tmp_path, "x")
    await page.goto(f"/console/refunds/{no}")
    await page.get_by_label("Note").fill("customer sent the wrong item back")

    raw = next(c["value"] for c in await context.cookies() if c["name"] == COOKIE)
    await expire(sessionmaker, raw)
    await page.get_by_role("button", name="Reject").click()
    await expect(page.get_by_role("heading", name="Sign in to the refunds console")).to_be_visible()
    await expect(page.locator(".kept")).to_contain_text("customer sent the wrong item back")
    await shot(page, tmp_path, "sign-in-kept")

    await page.get_by_label("Token from your identity provider").fill(token)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(f"{context_base(page)}/console/refunds/{no}")
    note = page.get_by_label("Note")
    await expect(note).to_have_value("customer sent the wrong item back")
    await shot(page, tmp_path, "form-restored")
    await page.get_by_role("button", name="Reject").click()
    await expect(page.locator("#flash")).to_contain_text(f"Rejected {no}")
    assert (await shop.get_refund(no))["status"] == "rejected"


def context_base(page: Page) -> str:
    return page.url.split("/console", 1)[0]


async def test_order_page_search_and_demo_sign_in(
    context: BrowserContext, shop: Shop, tmp_path: Path
) -> None:
    order, refund = await pending(shop, 2000)
    await shop.refund(order, 1000, reason="second box dented")
    page = await context.new_page()
    await page.goto("/console/sign-in")
    await page.get_by_role("button", name="carol — admin").click()  # `refunds dev` identities
    await expect(page.locator(".who")).to_contain_text("carol")
    await expect(page.get_by_role("heading", name="Approvals inbox")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "inbox-as-admin.png"))  # README's picture
    await page.get_by_label("Find a refund or order").fill(order["order_no"])
    await page.get_by_label("Find a refund or order").press("Enter")
    await expect(page.get_by_role("heading", name=f"Order {order['order_no']}")).to_be_visible()
    refunds = page.locator("#order-refunds tbody tr")
    await expect(refunds).to_have_count(2)
    await expect(page.locator("#order-facts")).to_contain_text("$30.00")  # reserved under way
    await shot(page, tmp_path, "order")
    await page.get_by_label("Find a refund or order").fill(refund["refund_no"])
    await page.get_by_label("Find a refund or order").press("Enter")
    await expect(page.get_by_role("heading", name=f"Refund {refund['refund_no']}")).to_be_visible()
    await expect(page.locator("#siblings tbody tr")).to_have_count(2)
    await shot(page, tmp_path, "refund")
    await page.set_viewport_size(PHONE)
    await shot(page, tmp_path, "refund-phone")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("main")).to_contain_text("You are signed out")
    response = await page.goto("/console/inbox")
    assert response is not None and "/console/sign-in" in page.url
