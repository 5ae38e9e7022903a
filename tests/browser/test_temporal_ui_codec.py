"""The Temporal UI shows a refund's encrypted payloads decoded through the API's codec server,
as `refunds dev` starts it (`--ui-codec-endpoint`), for staff: the page is saved as
docs/temporal-ui-decoded.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Route, expect

from api.main import create_app
from refunds.embedded.ports import free_port
from refunds.embedded.temporal import EmbeddedTemporal
from refunds.sandboxes.background import BackgroundServer
from tests.factories import Shop, uid
from tests.stack import Stack, start_stack
from workflows.refund import workflow_id

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "temporal-ui-decoded.png"


@pytest.fixture
def ui_stack(tmp_path: Path, database_url: str) -> Iterator[tuple[Stack, str, str]]:
    """A stack on a Temporal dev server with its UI, whose codec endpoint is an API of that
    stack allowing the UI's origin: (stack, UI URL, codec URL)."""
    ui_port, codec_port = free_port(), free_port()
    codec_url = f"http://127.0.0.1:{codec_port}/codec"
    temporal = EmbeddedTemporal(
        free_port(), ui_port, None, tmp_path / "temporal.log", codec_endpoint=codec_url
    )
    temporal.start()
    stack = start_stack(tmp_path / "stack", database_url, temporal.address)
    ui_url = f"http://127.0.0.1:{ui_port}"
    codec_api = BackgroundServer(
        create_app(stack.settings.model_copy(update={"temporal_ui_url": ui_url})), codec_port
    )
    codec_api.start()
    try:
        yield stack, ui_url, codec_url
    finally:
        codec_api.stop()
        stack.stop()
        temporal.stop()


async def test_temporal_ui_shows_the_refund_decoded_for_staff(
    browser: Browser, ui_stack: tuple[Stack, str, str]
) -> None:
    stack, ui_url, codec_url = ui_stack
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        shop = Shop.open(stack, http)
        order = await shop.order(amount=2500)
        reason = f"zip broken on arrival {uid('r')}"
        refund = await shop.refund(order, 2500, reason=reason)
        assert (await shop.approve(refund["refund_no"])).status_code == 200
        await shop.wait_status(refund["refund_no"], "succeeded")
    ops_token = shop.ops["Authorization"]

    async def with_token(route: Route) -> None:
        # What the UI does behind sign-in ("pass the user access token"); the dev UI has none.
        await route.continue_(headers={**route.request.headers, "authorization": ops_token})

    url = f"{ui_url}/namespaces/default/workflows/{workflow_id(refund['refund_no'])}"
    # Without a staff token the codec server refuses, and the UI has only ciphertext to show.
    anonymous = await browser.new_page(viewport={"width": 1400, "height": 1000})
    async with anonymous.expect_response(lambda r: "/codec/decode" in r.url) as refused:
        await anonymous.goto(url)
    assert (await refused.value).status == 401
    heading = anonymous.get_by_role("heading", name=workflow_id(refund["refund_no"]))
    await expect(heading).to_be_visible(timeout=30000)
    await anonymous.screenshot(path=str(SCREENSHOT.with_name("temporal-ui-undecoded.png")))
    assert await anonymous.get_by_text(reason).count() == 0
    await anonymous.close()

    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.route(f"{codec_url}/**", with_token)
    decoded: list[int] = []
    page.on("response", lambda r: decoded.append(r.status) if "/codec/decode" in r.url else None)
    await page.goto(url)
    await expect(page.get_by_text(reason).first).to_be_visible(timeout=30000)
    assert decoded and set(decoded) == {200}
    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=False)
