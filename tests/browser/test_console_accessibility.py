"""The console's pages checked by axe-core in the real browser (headless Chromium against the
real stack): sign-in, the approvals inbox with a refund in it, the ops queue and a refund page
have no serious or critical violation, and the browser reports no Content-Security-Policy
violation while loading them (no inline script, style or handler).

axe-core is the npm package pinned in tests/browser/axe/package-lock.json (`npm ci` there, as
.ci/run does). It is evaluated through the DevTools protocol, which the page's CSP does not
govern, so the page is checked under the very policy it is served with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.api.console_support import bearer, console_api
from tests.browser.conftest import in_ci
from tests.factories import Shop, uid
from tests.stack import Stack

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# The standards the check holds the pages to (WCAG 2.1 A and AA, and axe's best practices).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        if in_ci():
            pytest.fail(f"{AXE} is missing: npm ci --prefix tests/browser/axe")
        pytest.skip(f"{AXE} is missing (npm ci --prefix tests/browser/axe)")
    return AXE.read_text()


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    return console_api(stack)


@pytest_asyncio.fixture
async def context(browser: Browser, console_url: str) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(base_url=console_url)
    yield made
    await made.close()


class Checked:
    """A page whose CSP reports are collected from the browser's console."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.csp: list[str] = []
        page.on("console", self._heard)

    def _heard(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)


async def violations(page: Page, axe_source: str) -> list[dict[str, Any]]:
    """axe's serious and critical violations of the page as it is now."""
    await page.evaluate(axe_source)
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


async def signed_in(context: BrowserContext, token: str) -> Checked:
    checked = Checked(await context.new_page())
    await checked.page.goto("/console/sign-in")
    await checked.page.get_by_label("Token from your identity provider").fill(token)
    await checked.page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(checked.page.get_by_role("button", name="Sign out")).to_be_visible()
    return checked


async def test_sign_in_has_no_serious_accessibility_violation(
    context: BrowserContext, axe_source: str
) -> None:
    checked = Checked(await context.new_page())
    await checked.page.goto("/console/sign-in")
    assert await violations(checked.page, axe_source) == []
    assert checked.csp == []


async def test_the_staff_pages_have_no_serious_accessibility_violation(
    context: BrowserContext, shop: Shop, axe_source: str
) -> None:
    order = await shop.order("stripe", 10000)
    refund = await shop.refund(order, 2500, reason="arrived broken")  # waits in the inbox
    token = bearer(shop.stack, uid("staff"), "approver", "ops", "admin")
    checked = await signed_in(context, token)
    found: dict[str, list[dict[str, Any]]] = {}
    for path, holds in [
        ("/console/inbox", refund["refund_no"]),
        ("/console/ops", "Ops queue"),
        (f"/console/refunds/{refund['refund_no']}", "$25.00"),
        (f"/console/orders/{order['order_no']}", order["order_no"]),
    ]:
        await checked.page.goto(path)
        await expect(checked.page.locator("main")).to_contain_text(holds)
        found[path] = await violations(checked.page, axe_source)
    assert found == {path: [] for path in found}
    assert checked.csp == []
