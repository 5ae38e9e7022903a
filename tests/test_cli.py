"""The `refunds` command (issue 10): every flag's help says its default, `refunds token` signs
with the secret of the data dir it is given, demo seeding never pays at a gateway `refunds dev`
did not start and never stops the stack, and dev-only commands say so where they are absent."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import read_token
from refunds.cli import main as cli
from refunds.cli import seed
from refunds.cli.chaos_stack import ChaosStack
from refunds.cli.main import parser
from refunds.cli.process_stack import ProcessStack
from refunds.gateways.stripe_gateway import SUBSCRIBED_EVENTS
from refunds.sandboxes.stripe_sandbox.config import webhook_subscription
from refunds.settings import dev_secret


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_flag_of_every_subcommand_says_its_default(name: str) -> None:
    command = subcommands()[name]
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"refunds {name} {action.dest}: no help"
        if action.option_strings:
            expected = "(required)" if action.required else "default"
            assert expected in action.help, f"refunds {name} {action.option_strings[0]}"
    # and the rendered --help shows them (a %(default)s expands)
    assert "%(" not in command.format_help()


def test_refunds_token_signs_with_the_secret_of_its_data_dir(tmp_path: Path) -> None:
    """The secret `refunds dev --data-dir X` generated (its children read it from X), not the
    one of the working directory's `.refunds`, with REFUNDS_DATA_DIR unset."""
    data_dir = tmp_path / "dev-data"
    secret = dev_secret(data_dir, "jwt_secret")  # as `refunds dev`'s processes generate it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    done = subprocess.run(
        [sys.executable, "-m", "refunds.cli.main", "token", "--sub", "dave", "--role", "ops"]
        + ["--data-dir", str(data_dir)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    principal = read_token(secret, f"Bearer {done.stdout.strip()}")
    assert principal.id == "dave" and principal.roles == {"ops"}
    assert not (elsewhere / ".refunds").exists()


def test_dev_only_commands_say_so_when_their_packages_are_absent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    absent = set(cli.DEV_ONLY_PACKAGES)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a)
    )
    for argv in (["dev"], ["chaos"], ["bench"], ["sandbox", "wechatpay", "--port", "1"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert str(stopped.value).startswith(
            f"refunds {argv[0]} is dev-only: install the project with pip install -e ."
        )
        assert "refunds.sandboxes" in str(stopped.value)


class FakeApi:
    """The API's order routes: none registered yet; POST registers."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            order_no = request.url.path.rsplit("/", 1)[-1]
            return httpx.Response(200 if order_no in self.orders else 404, json={})
        body = httpx.Response(200, content=request.content).json()
        self.orders[body["order_no"]] = body
        return httpx.Response(201, json=body)


def seed_env(tmp_path: Path) -> dict[str, str]:
    return {
        "REFUNDS_DATA_DIR": str(tmp_path),
        "REFUNDS_STRIPE_API_BASE": "http://127.0.0.1:9/another-stripe",
        "REFUNDS_WECHATPAY_GATEWAY": "http://127.0.0.1:9/sandbox",
    }


def channel_orders(channel: str) -> list[str]:
    return [d["order_no"] for d in seed.DEMO_ORDERS if d["channel"] == channel]


def test_seeding_pays_nothing_at_a_gateway_dev_did_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_stripe(*_: object) -> str:
        raise AssertionError("a demo payment at a Stripe that refunds dev did not start")

    monkeypatch.setattr(seed, "pay_with_stripe", no_stripe)
    monkeypatch.setattr(seed, "pay_with_wechatpay", lambda url, amount, currency: f"wx_{amount}")
    api = FakeApi()
    seeded = seed.seed_demo_orders(
        seed_env(tmp_path), "http://api", "t", ["wechatpay"], httpx.MockTransport(api.handle)
    )
    assert seeded == channel_orders("wechatpay") == sorted(api.orders)
    assert "no demo stripe orders: REFUNDS_STRIPE_API_BASE points at a gateway" in (
        capsys.readouterr().err
    )


def test_a_seeding_failure_is_reported_and_the_other_orders_are_seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unsupported(*_: object) -> str:
        raise RuntimeError("Received unknown parameter: payment_method_types")

    monkeypatch.setattr(seed, "pay_with_stripe", unsupported)
    monkeypatch.setattr(seed, "pay_with_wechatpay", lambda url, amount, currency: f"wx_{amount}")
    api = FakeApi()
    seeded = seed.seed_demo_orders(
        seed_env(tmp_path),
        "http://api",
        "t",
        ["stripe", "wechatpay"],
        httpx.MockTransport(api.handle),
    )
    assert seeded == channel_orders("wechatpay")
    err = capsys.readouterr().err
    for order_no in channel_orders("stripe"):
        assert f"demo order {order_no} not seeded: RuntimeError: Received unknown" in err


def test_seeding_with_the_api_unreachable_returns_instead_of_raising(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    seeded = seed.seed_demo_orders(
        seed_env(tmp_path), "http://api", "t", ["stripe", "wechatpay"], httpx.MockTransport(down)
    )
    assert seeded == []
    assert capsys.readouterr().err.count("not seeded: ConnectError") == len(seed.DEMO_ORDERS)


def test_bench_stacks_subscribe_stripe_as_the_readme_says_and_chaos_takes_every_event(
    tmp_path: Path,
) -> None:
    """`refunds bench` subscribes its Stripe sandbox as a shop following the README does;
    `refunds chaos` takes every event, so its out-of-order fault still delivers a stale
    `refund.created` after the success."""
    bench = ProcessStack(tmp_path, "postgresql://unused", "127.0.0.1:1", workers=0)
    chaos = ChaosStack(tmp_path, "postgresql://unused", "127.0.0.1:1", workers=0)
    args = parser().parse_args(bench.sandbox_commands()["sandbox-stripe"])
    assert webhook_subscription(args.webhook_events) == frozenset(SUBSCRIBED_EVENTS)
    assert parser().parse_args(chaos.sandbox_commands()["sandbox-stripe"]).webhook_events is None


def test_sandbox_refuses_a_webhook_event_it_never_sends() -> None:
    argv = ["sandbox", "stripe", "--port", "1", "--webhook-events", "refund.updated,refund.update"]
    with pytest.raises(
        SystemExit, match=r"--webhook-events: unknown webhook events \['refund.update'\]"
    ):
        cli.main(argv)
