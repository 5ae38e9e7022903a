"""A shop's webhook endpoint that stops answering, through the real stack (issue 13): after the
last try the delivery failed with every try on record, the endpoint is failing in the API, on
`/metrics` and on the console's ops page, and a redelivery once it answers again heals it. A
disabled endpoint gets no delivery at all."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.console_support import bearer, console_api, signed_in
from tests.e2e.webhook_receiver import Receiver, running_receiver, subscribed, wait_until
from tests.factories import Shop, uid

# The shared stack tries for days (the default); this endpoint's workflow gives up after this.
SHORT_RETRY_FOR = timedelta(seconds=3)
ALWAYS = 10**6
T = TypeVar("T")


async def _gauges(http: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels.get("state", "")] = sample.value
    return found


@asynccontextmanager
async def short_lived_endpoint(
    shop: Shop, api_url: str, receiver: Receiver
) -> AsyncIterator[dict[str, Any]]:
    """An endpoint whose delivery workflow gives up after SHORT_RETRY_FOR: the workflow records
    the timings of the API that starts it, so it is created disabled through `api_url` (no
    event can start it first, with the stack's timings) and only then enabled."""
    body = {"url": receiver.url, "event_types": ["refund.created"], "enabled": False}
    created = await shop.http.post(f"{api_url}/v1/webhook_endpoints", json=body, headers=shop.admin)
    assert created.status_code == 201, created.text
    endpoint = dict(created.json())
    receiver.secrets.append(endpoint["secret"])
    path = f"{api_url}/v1/webhook_endpoints/{endpoint['id']}"
    try:
        enabled = await shop.http.patch(path, json={"enabled": True}, headers=shop.admin)
        assert enabled.status_code == 200, enabled.text
        yield endpoint
    finally:
        await shop.http.delete(path, headers=shop.admin)


async def settled(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """`read()` again until `done` holds for what it returns."""
    deadline = time.monotonic() + 30
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {value!r}")
        await asyncio.sleep(0.2)


async def _created_event(shop: Shop, refund_no: str) -> dict[str, Any]:
    async def events() -> list[dict[str, Any]]:
        params = {"refund_no": refund_no}
        response = await shop.http.get("/v1/events", params=params, headers=shop.ops)
        return list(response.json()["items"])

    (event,) = await settled(events, bool, f"the event of {refund_no}")
    return event


def _ours(event: dict[str, Any], endpoint_id: int) -> dict[str, Any] | None:
    """This test's endpoint's delivery (other tests' endpoints may hear the same event)."""
    found = [d for d in event["deliveries"] if d["endpoint_id"] == endpoint_id]
    return found[0] if found else None


async def _delivery(shop: Shop, event_id: str, endpoint_id: int) -> dict[str, Any] | None:
    response = await shop.http.get(f"/v1/events/{event_id}", headers=shop.ops)
    assert response.status_code == 200, response.text
    return _ours(response.json(), endpoint_id)


async def _endpoint(shop: Shop, endpoint_id: int) -> dict[str, Any]:
    response = await shop.http.get(f"/v1/webhook_endpoints/{endpoint_id}", headers=shop.ops)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _failing_ids(shop: Shop) -> set[int]:
    response = await shop.http.get("/v1/webhook_endpoints", headers=shop.ops)
    return {e["id"] for e in response.json()["items"] if e["failing"]}


async def _ops_page(console: httpx.AsyncClient) -> str:
    response = await console.get("/console/ops")
    assert response.status_code == 200, response.text
    return response.text


def _console_row(page: str, endpoint_id: int) -> str | None:
    """The endpoint's row in the ops page's failing endpoints, or None."""
    found = re.search(rf'<tr data-endpoint-id="{endpoint_id}">(.*?)</tr>', page, re.S)
    return found.group(1) if found else None


async def test_an_endpoint_out_of_tries_is_failing_everywhere_until_a_redelivery_lands(
    shop: Shop,
) -> None:
    api_url = console_api(shop.stack, webhook_retry_for=SHORT_RETRY_FOR)
    console = await signed_in(api_url, bearer(shop.stack, uid("ops"), "ops"))
    failed_before = (await _gauges(shop.http))["refunds_webhook_deliveries"]["failed"]
    with running_receiver(fail_first=ALWAYS) as receiver:
        async with short_lived_endpoint(shop, api_url, receiver) as endpoint:
            endpoint_id = endpoint["id"]
            order = await shop.order("stripe", 5000)
            refund_no = (await shop.refund(order, 1000))["refund_no"]
            event = await _created_event(shop, refund_no)

            async def delivery() -> dict[str, Any] | None:
                return await _delivery(shop, event["id"], endpoint_id)

            failed = await settled(
                delivery, lambda d: d is not None and d["state"] == "failed", "given up"
            )
            assert failed is not None
            tries = failed["tries"]
            assert failed["attempts"] == len(tries) >= 2
            assert [t["status_code"] for t in tries] == [500] * len(tries)
            assert [a.answered for a in receiver.of(refund_no)] == [500] * len(tries)

            shown = await _endpoint(shop, endpoint_id)
            assert shown["failing"] is True and shown["failing_since"]
            gauges = await _gauges(shop.http)
            failing = await _failing_ids(shop)
            assert endpoint_id in failing
            assert gauges["refunds_webhook_endpoints_failing"][""] == len(failing)
            assert gauges["refunds_webhook_deliveries"]["failed"] >= failed_before + 1

            page = await _ops_page(console)
            assert "Failing webhook endpoints" in page
            row = _console_row(page, endpoint_id)
            assert row is not None, page
            assert receiver.url in row
            assert "the receiver answered 500" in row
            count = re.search(r'data-label="Failed deliveries" class="num">(\d+)<', row)
            assert count is not None and int(count.group(1)) >= 1

            receiver.fail_first = 0  # the shop fixed its receiver
            redeliver = await shop.http.post(
                f"/v1/events/{event['id']}/redeliver",
                params={"endpoint_id": endpoint_id},
                headers=shop.ops,
            )
            assert redeliver.json() == {"queued": 1}
            await wait_until(lambda: receiver.accepted(refund_no), what="the redelivery")
            healed = await settled(
                lambda: _endpoint(shop, endpoint_id), lambda e: not e["failing"], "healed"
            )
            assert healed["failing_since"] is None
            delivered = await _delivery(shop, event["id"], endpoint_id)
            assert delivered is not None and delivered["state"] == "delivered"
            # Redelivery keeps the failed tries on record, and adds the one that landed.
            statuses = [t["status_code"] for t in delivered["tries"]]
            assert statuses == [500] * len(tries) + [200]

            page = await _ops_page(console)
            assert _console_row(page, endpoint_id) is None
            # The section is there only while some endpoint fails.
            assert ("Failing webhook endpoints" in page) == bool(await _failing_ids(shop))
    await console.aclose()


async def test_a_disabled_endpoint_gets_no_delivery_of_new_events(shop: Shop) -> None:
    with running_receiver() as disabled, running_receiver() as enabled:
        async with (
            subscribed(shop, disabled, ["refund.created"]) as off,
            subscribed(shop, enabled, ["refund.created"]) as on,
        ):
            path = f"/v1/webhook_endpoints/{off['id']}"
            patched = await shop.http.patch(path, json={"enabled": False}, headers=shop.admin)
            assert patched.status_code == 200 and patched.json()["enabled"] is False
            order = await shop.order("stripe", 5000)
            refund_no = (await shop.refund(order, 1000))["refund_no"]
            # The enabled endpoint's arrival shows the event was written and sent out.
            await wait_until(lambda: enabled.accepted(refund_no), what="the enabled endpoint")
            event = await _created_event(shop, refund_no)
            assert _ours(event, on["id"]) is not None
            assert _ours(event, off["id"]) is None
            assert disabled.of(refund_no) == []
