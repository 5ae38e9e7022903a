"""The sandboxes' chaos mode: every n-th gateway API call fails, control calls never count, and a
"timeout" stalls after the work is done (the gateway acted, the client saw no answer)."""

from __future__ import annotations

import asyncio
import time

import pytest
import stripe

from refunds.domain.errors import GatewayTransientError
from refunds.sandboxes.chaos import ChaosMode
from tests.gateways.wechatpay_support import WeChatEnv, refund_input
from tests.sandboxes.stripe_support import StripeStack, new_refund_no


def test_chaos_hits_every_nth_call_alternating_actions() -> None:
    chaos = ChaosMode()
    chaos.configure({"every": 3, "actions": ["http_500", "timeout"], "delay": 1})
    taken = [chaos.take("/v1/refunds") for _ in range(9)]
    assert taken == [None, None, "http_500", None, None, "timeout", None, None, "http_500"]
    assert chaos.snapshot()["hits"] == {"http_500": 2, "timeout": 1}
    chaos.off()
    assert chaos.take("/v1/refunds") is None
    assert chaos.snapshot()["calls"] == 9


def test_chaos_rejects_a_bad_spec() -> None:
    with pytest.raises(ValueError):
        ChaosMode().configure({"every": 0})
    with pytest.raises(ValueError):
        ChaosMode().configure({"every": 2, "actions": ["explode"]})


def test_stripe_chaos_500_counts_api_calls_not_control_calls(stripe_stack: StripeStack) -> None:
    intent = stripe_stack.pay(1000)
    control = stripe_stack.control
    control.post("/_sandbox/chaos", json={"every": 1, "actions": ["http_500"]}).raise_for_status()
    try:
        with pytest.raises(stripe.APIError):
            stripe_stack.client().v1.refunds.create(params={"payment_intent": intent})
        control.get("/_sandbox/refunds").raise_for_status()  # a control call: not counted
        chaos = control.get("/_sandbox/chaos").json()
    finally:
        control.delete("/_sandbox/chaos").raise_for_status()
    assert chaos["calls"] == 1 and chaos["hits"] == {"http_500": 1}
    assert control.get("/_sandbox/refunds", params={"refund_no": "none"}).json()["data"] == []


def test_stripe_chaos_timeout_creates_the_refund_then_stalls(stripe_stack: StripeStack) -> None:
    intent, refund_no = stripe_stack.pay(1000), new_refund_no()
    spec = {"every": 1, "actions": ["timeout"], "delay": 1.5}
    stripe_stack.control.post("/_sandbox/chaos", json=spec).raise_for_status()
    try:
        with pytest.raises(stripe.APIConnectionError):
            stripe_stack.client(timeout=0.5).v1.refunds.create(
                params={"payment_intent": intent, "metadata": {"refund_no": refund_no}}
            )
        created, requests = stripe_stack.refunds(refund_no)
    finally:
        stripe_stack.control.delete("/_sandbox/chaos").raise_for_status()
    assert requests == 1 and len(created) == 1  # the gateway did act: an unknown answer
    time.sleep(1.2)  # let the stalled request finish before the next test


async def test_wechat_chaos_500_then_timeout_after_the_refund_exists(
    wechat_env: WeChatEnv,
) -> None:
    txn = await wechat_env.paid_transaction(1000)
    url = f"{wechat_env.sandbox_url}/sandbox/chaos"
    # Each create is a lookup then the create: every 2nd call hits the creates.
    spec = {"every": 2, "actions": ["http_500", "timeout"], "delay": 2.5}
    (await wechat_env.http.post(url, json=spec)).raise_for_status()
    entry = refund_input(txn, 400)
    try:
        with pytest.raises(GatewayTransientError):
            await wechat_env.gateway.create_refund(entry)
        assert entry.refund_no not in (await wechat_env.sandbox_refunds(entry.refund_no)).get(
            "create_requests", {}
        )
        with pytest.raises(Exception):  # noqa: B017 - the client's own timeout, whatever type
            await wechat_env.gateway.create_refund(entry)
        found = await wechat_env.sandbox_refunds(entry.refund_no)
    finally:
        chaos = (await wechat_env.http.delete(url)).json()
    assert chaos["hits"] == {"http_500": 1, "timeout": 1}
    assert [r["out_refund_no"] for r in found["refunds"]] == [entry.refund_no]
    await asyncio.sleep(1.0)
