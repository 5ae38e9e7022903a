"""The shops' webhooks through the real stack (issue 13): signed, retried with backoff, in order
per refund, every try recorded; a worker killed mid-delivery loses nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from refunds.webhooks.signing import verify
from tests.e2e.webhook_receiver import running_receiver, subscribed, wait_until
from tests.factories import Shop
from tests.stack import settings_env

REFUND_PATH = ["refund.created", "refund.approved", "refund.succeeded"]


async def _succeeded_refund(shop: Shop) -> dict[str, Any]:
    order = await shop.order("stripe", 8000)
    refund = await shop.refund(order, 3000)
    assert (await shop.approve(refund["refund_no"])).status_code == 200
    return await shop.wait_status(refund["refund_no"], "succeeded")


async def _events(shop: Shop, **params: Any) -> list[dict[str, Any]]:
    response = await shop.http.get("/v1/events", params=params, headers=shop.ops)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_each_event_arrives_signed_in_order_after_three_500s_with_every_try_recorded(
    shop: Shop,
) -> None:
    with running_receiver(fail_first=3) as receiver:
        async with subscribed(shop, receiver) as endpoint:
            refund = await _succeeded_refund(shop)
            refund_no = refund["refund_no"]
            await wait_until(
                lambda: len(receiver.accepted(refund_no)) == 3, what="three accepted events"
            )
            arrivals = receiver.of(refund_no)
            # Every try of each event, each verified, and no event before the one it follows.
            assert all(a.verified_with for a in arrivals)
            assert [a.event["sequence"] for a in arrivals] == [1] * 4 + [2] * 4 + [3] * 4
            assert [a.answered for a in arrivals] == [500, 500, 500, 200] * 3
            accepted = receiver.accepted(refund_no)
            assert [e["type"] for e in accepted] == REFUND_PATH
            # The payload is the refund as the API shows it, without its timeline.
            shown = {k: v for k, v in refund.items() if k != "timeline"}
            assert accepted[-1]["data"]["refund"] == shown
            await _check_recorded_tries(shop, refund_no, endpoint["id"], arrivals_per_event=4)


def _ours(deliveries: list[dict[str, Any]], endpoint_id: int) -> dict[str, Any]:
    """This test's endpoint's delivery (other tests' endpoints may hear the same event)."""
    (delivery,) = [d for d in deliveries if d["endpoint_id"] == endpoint_id]
    return delivery


async def _settled_deliveries(
    shop: Shop, refund_no: str, endpoint_id: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """This endpoint's delivery of each of the refund's events, once none is pending: the
    receiver's 200 comes a moment before the activity records it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        deliveries = []
        for event in await _events(shop, refund_no=refund_no):
            response = await shop.http.get(f"/v1/events/{event['id']}", headers=shop.ops)
            deliveries.append(_ours(response.json()["deliveries"], endpoint_id))
        pending = [d for d in deliveries if d["state"] == "pending"]
        if not pending or asyncio.get_running_loop().time() > deadline:
            return deliveries
        await asyncio.sleep(0.2)


async def _check_recorded_tries(
    shop: Shop, refund_no: str, endpoint_id: int, arrivals_per_event: int
) -> None:
    events = await _events(shop, refund_no=refund_no)
    assert [e["type"] for e in events] == REFUND_PATH
    for delivery in await _settled_deliveries(shop, refund_no, endpoint_id):
        assert delivery["state"] == "delivered"
        assert delivery["attempts"] == arrivals_per_event
        tries = delivery["tries"]
        assert [t["status_code"] for t in tries] == [500] * (arrivals_per_event - 1) + [200]
        assert all(t["latency_ms"] >= 0 for t in tries)


async def test_a_worker_killed_during_a_delivery_loses_no_event(shop: Shop) -> None:
    with running_receiver(hold_first_seconds=6) as receiver:
        async with subscribed(shop, receiver) as endpoint:
            order = await shop.order("stripe", 8000)
            refund = await shop.refund(order, 3000)
            refund_no = refund["refund_no"]
            await wait_until(lambda: len(receiver.of(refund_no)) >= 1, what="the first try")
            shop.stack.kill_worker()  # the receiver holds the first answer: the try is in flight
            shop.stack.restart_worker()
            assert (await shop.approve(refund_no)).status_code == 200
            await shop.wait_status(refund_no, "succeeded", timeout=60)
            await wait_until(
                lambda: len({e["id"] for e in receiver.accepted(refund_no)}) == 3,
                timeout=90,
                what="every event accepted",
            )
            first_accepted = []
            for event in receiver.accepted(refund_no):
                if event["type"] not in first_accepted:
                    first_accepted.append(event["type"])
            assert first_accepted == REFUND_PATH
            settled = await _settled_deliveries(shop, refund_no, endpoint["id"])
            assert [d["state"] for d in settled] == ["delivered"] * 3


async def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(shop: Shop) -> None:
    with running_receiver() as receiver:
        async with subscribed(shop, receiver, ["refund.created"]) as endpoint:
            old = endpoint["secret"]
            path = f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret"
            response = await shop.http.post(
                path, json={"overlap_seconds": 3600}, headers=shop.admin
            )
            assert response.status_code == 200, response.text
            new = response.json()["secret"]
            assert new != old
            receiver.secrets[:] = [new]
            order = await shop.order("stripe", 5000)
            during = (await shop.refund(order, 1000))["refund_no"]
            await wait_until(lambda: receiver.accepted(during), what="the event in the overlap")
            (arrival,) = receiver.of(during)
            assert verify(arrival.signature, arrival.body, old)
            assert verify(arrival.signature, arrival.body, new)
            assert arrival.signature.count("v1=") == 2
            # Rotated again with no overlap: only the newest secret signs.
            response = await shop.http.post(path, json={"overlap_seconds": 0}, headers=shop.admin)
            newest = response.json()["secret"]
            receiver.secrets[:] = [newest]
            after = (await shop.refund(order, 1000))["refund_no"]
            await wait_until(lambda: receiver.accepted(after), what="the event after the overlap")
            (arrival,) = receiver.of(after)
            assert verify(arrival.signature, arrival.body, newest)
            assert not verify(arrival.signature, arrival.body, new)


async def test_events_filter_and_redeliver_by_api_and_by_cli(shop: Shop) -> None:
    with running_receiver() as receiver:
        async with subscribed(shop, receiver) as endpoint:
            started = datetime.now(UTC) - timedelta(seconds=1)
            refund = await _succeeded_refund(shop)
            refund_no = refund["refund_no"]
            await wait_until(lambda: len(receiver.accepted(refund_no)) == 3, what="delivered")
            (succeeded,) = await _events(shop, refund_no=refund_no, type="refund.succeeded")
            assert succeeded["sequence"] == 3
            # The receiver hears the last event just before the try is recorded as delivered.
            for _ in range(50):
                delivered = await _events(shop, refund_no=refund_no, delivery_state="delivered")
                if len(delivered) == 3:
                    break
                await asyncio.sleep(0.2)
            assert len(delivered) == 3
            assert await _events(shop, refund_no=refund_no, delivery_state="failed") == []
            response = await shop.http.post(
                f"/v1/events/{succeeded['id']}/redeliver",
                params={"endpoint_id": endpoint["id"]},
                headers=shop.ops,
            )
            assert response.json() == {"queued": 1}
            await wait_until(lambda: len(receiver.accepted(refund_no)) == 4, what="redelivered")
            await asyncio.to_thread(_cli_redeliver, shop, started, endpoint["id"])
            await wait_until(lambda: len(receiver.accepted(refund_no)) >= 7, what="CLI redelivery")


def _cli_redeliver(shop: Shop, since: datetime, endpoint_id: int) -> None:
    env = {**os.environ, **settings_env(shop.stack.settings)}
    done = subprocess.run(
        [sys.executable, "-m", "refunds.cli.main", "events", "redeliver"]
        + ["--since", since.isoformat(), "--endpoint", str(endpoint_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "queued again" in done.stdout


async def test_a_private_target_is_refused_unless_allowed(shop: Shop) -> None:
    url = shop.stack.api(
        shop.stack.settings.model_copy(update={"webhook_allow_private_targets": False})
    )
    # `localhost` is a name that resolves (from /etc/hosts) to a loopback address only.
    refused = ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.1.2.3/"]
    refused += ["http://localhost:9/hook", "http://[2002:7f00:1::]/", "http://[64:ff9b::a00:1]/"]
    for target in refused:
        response = await shop.http.post(
            f"{url}/v1/webhook_endpoints",
            json={"url": target, "event_types": ["*"]},
            headers=shop.admin,
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "webhook_target_refused"
    response = await shop.http.post(
        f"{url}/v1/webhook_endpoints",
        json={"url": "file:///etc/passwd", "event_types": ["*"]},
        headers=shop.admin,
    )
    assert response.status_code == 422
