"""`/docs` as a person uses it (issue 10): headless Chromium (Debian's `chromium`, driven by
Playwright) opens Swagger UI, clicks Authorize, pastes a token, runs `GET /v1/refunds` and sees
200, with every asset served by the API itself (no CDN: it works offline)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.factories import uid
from tests.stack import Stack


async def authorize(page: Page, token: str) -> None:
    await page.locator(".auth-wrapper button.authorize").click()
    modal = page.locator(".modal-ux")
    await modal.locator("input").fill(token)
    await modal.locator(".auth-btn-wrapper button.authorize").click()
    await modal.locator("button.btn-done").click()
    await expect(page.locator(".auth-wrapper button.authorize.locked")).to_be_visible()


async def test_docs_authorize_then_try_list_refunds_is_200(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 1600})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{stack.api_url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Refunds")

    token = stack.token(uid("ops"), "ops")["Authorization"].removeprefix("Bearer ")
    await authorize(page, token)
    operation = page.locator("#operations-refunds-list_refunds")
    await operation.locator(".opblock-summary").click()
    await operation.locator("button.try-out__btn").click()
    await operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    await expect(status).to_have_text("200", timeout=15_000)
    await page.screenshot(path=str(tmp_path / "docs.png"))
    await operation.locator(".responses-wrapper").screenshot(path=str(tmp_path / "answer.png"))

    sent = operation.locator(".curl-command")
    await expect(sent).to_contain_text(f"Authorization: Bearer {token}")
    outside = [url for url in requested if not url.startswith(("data:", stack.api_url))]
    assert outside == []
