"""`refunds dev` comes up on real servers, answers /readyz, keeps its data across restarts and
leaves no child process behind when stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from refunds.embedded.ports import free_port
from refunds.gateways.stripe_gateway import SUBSCRIBED_EVENTS


def start_dev(
    data_dir: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ports = [str(free_port()) for _ in range(3)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "refunds.cli.main",
            "dev",
            "--data-dir",
            str(data_dir),
            "--api-port",
            ports[0],
            "--temporal-port",
            ports[1],
            "--ui-port",
            ports[2],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    dev_json = data_dir / "dev.json"
    deadline = time.monotonic() + 120
    while (
        not dev_json.exists()
        or json.loads(dev_json.read_text()).get("api_url", "").split(":")[-1] != ports[0]
    ):
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode() if proc.stdout else "dev exited")
        assert time.monotonic() < deadline, "refunds dev did not come up in 120 s"
        time.sleep(0.5)
    return proc, json.loads(dev_json.read_text())


def stop_dev(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "refunds dev should have started servers"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0
    return children


def assert_reconciliation_scheduled(address: str) -> None:
    """The daily reconciliation's Schedule exists, as ops see it (`temporal schedule describe`)."""
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    described = subprocess.run(
        [temporal, "schedule", "describe", "--schedule-id", "refunds-reconciliation"]
        + ["--address", address, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert described.returncode == 0, described.stderr
    schedule = json.loads(described.stdout)
    action = schedule["schedule"]["action"]["startWorkflow"]
    assert action["workflowType"]["name"] == "ReconciliationWorkflow"


def assert_ui_decodes_at_the_codec_server(info: dict[str, Any]) -> None:
    """The dev UI is started with the API's codec endpoint, the API lets the UI's origin call it
    (CORS preflight), and staff get back what the workers encrypted; a customer gets 403."""
    codec = f"{info['api_url']}/codec"
    ui_settings = httpx.get(f"{info['temporal_ui_url']}/api/v1/settings", timeout=10).json()
    assert ui_settings["Codec"]["Endpoint"] == codec
    preflight = httpx.options(
        f"{codec}/decode",
        headers={
            "Origin": info["temporal_ui_url"],
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == info["temporal_ui_url"]
    plain = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "ImJyb2tlbiI="}]}
    admin = {"Authorization": f"Bearer {info['tokens']['admin']}"}
    sealed = httpx.post(f"{codec}/encode", json=plain, headers=admin, timeout=10).json()
    assert sealed["payloads"][0]["metadata"]["encoding"] == "YmluYXJ5L2VuY3J5cHRlZA=="
    opened = httpx.post(f"{codec}/decode", json=sealed, headers=admin, timeout=10)
    assert opened.json() == plain
    customer = {"Authorization": f"Bearer {info['tokens']['customer']}"}
    refused = httpx.post(f"{codec}/decode", json=sealed, headers=customer, timeout=10)
    assert refused.status_code == 403


@pytest.fixture
def tmp_path_outside_pytest() -> Iterator[Path]:
    """A temp dir outside pytest-of-root: another pytest run resets that dir to 0700, which
    locks the embedded PostgreSQL's unprivileged user out of a data dir under it."""
    root = Path(tempfile.mkdtemp(prefix="refunds-test-dev-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_refunds_dev_runs_the_stack_and_stops_it_cleanly(tmp_path_outside_pytest: Path) -> None:
    tmp_path = tmp_path_outside_pytest
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    data_dir = tmp_path / "data"
    proc, info = start_dev(data_dir, env)
    try:
        assert set(info) >= {
            "api_url",
            "temporal_address",
            "temporal_ui_url",
            "stripe_api_base",
            "wechatpay_gateway",
            "tokens",
            "demo_orders",
        }
        ready = httpx.get(f"{info['api_url']}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"] == {
            "database": "ok",
            "temporal": "ok",
        }
        assert httpx.get(f"{info['api_url']}/docs", timeout=10).status_code == 200
        # Its Stripe sandbox sends what a shop following the README subscribes to.
        subscription = httpx.get(f"{info['stripe_api_base']}/_sandbox/webhook_events", timeout=10)
        assert subscription.json() == {"enabled_events": sorted(SUBSCRIBED_EVENTS)}
        assert httpx.get(info["temporal_ui_url"], timeout=10).status_code == 200
        admin = {"Authorization": f"Bearer {info['tokens']['admin']}"}
        order_no = info["demo_orders"][0]
        first = httpx.get(f"{info['api_url']}/v1/orders/{order_no}", headers=admin, timeout=10)
        assert first.status_code == 200 and first.json()["status"] == "paid"
        # `refunds token --data-dir` from elsewhere signs with this stack's generated secret
        minted = subprocess.run(
            [sys.executable, "-m", "refunds.cli.main", "token", "--sub", "carol"]
            + ["--role", "admin", "--data-dir", str(data_dir)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        mine = {"Authorization": f"Bearer {minted}"}
        assert httpx.get(first.url, headers=mine, timeout=10).status_code == 200
        assert_reconciliation_scheduled(info["temporal_address"])
        assert_ui_decodes_at_the_codec_server(info)
    finally:
        children = stop_dev(proc)
    time.sleep(0.5)
    assert [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []

    # A second start reuses the data dir: the same orders, paid once, still there.
    proc, again = start_dev(data_dir, env)
    try:
        admin = {"Authorization": f"Bearer {again['tokens']['admin']}"}
        second = httpx.get(f"{again['api_url']}/v1/orders/{order_no}", headers=admin, timeout=10)
        assert second.status_code == 200
        assert second.json()["payment_ref"] == first.json()["payment_ref"]
    finally:
        stop_dev(proc)
