"""Outside dev mode a process started without its secrets stops at once, naming every missing
variable, before it opens a port or connects anywhere; `refunds token` still signs for a
`refunds dev` data dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from refunds.embedded.ports import free_port, port_is_open

SECRET = "dev-secret-of-this-data-dir-0123456789"
MISSING = [
    "REFUNDS_JWT_SECRET",
    "REFUNDS_DECISION_KEY",
    "REFUNDS_STRIPE_API_KEY",
    "REFUNDS_STRIPE_WEBHOOK_SECRET",
    "REFUNDS_WECHATPAY_APIV3_KEY",
    "REFUNDS_WECHATPAY_PRIVATE_KEY_PATH",
    "REFUNDS_WECHATPAY_CERT_SERIAL_NO",
    "REFUNDS_WECHATPAY_PUBLIC_KEY_PATH",
    "REFUNDS_WECHATPAY_PUBLIC_KEY_ID",
]


@pytest.fixture
def trap() -> Iterator[socket.socket]:
    """A listening socket standing in for PostgreSQL and Temporal: it records any connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def production_env(data_dir: Path, trap: socket.socket, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFUNDS_", "TEMPORAL_"))}
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    return {
        **env,
        "REFUNDS_DATA_DIR": str(data_dir),
        "REFUNDS_DATABASE_URL": f"postgresql://refunds:pw@{address}/refunds",
        "REFUNDS_TEMPORAL_ADDRESS": address,
        **extra,
    }


def run_refunds(env: dict[str, str], *args: str, watch: int | None = None) -> tuple[int, str]:
    """Run `refunds ARGS` to its end; fail if `watch` (a port) ever opens meanwhile."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "refunds.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        assert watch is None or not port_is_open(watch), f"port {watch} opened"
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=10)
    return proc.returncode, stderr


def assert_never_connected(trap: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        trap.accept()


@pytest.mark.parametrize("command", ["api", "worker", "migrate"])
def test_a_process_without_secrets_exits_naming_all_before_listening(
    tmp_path: Path, trap: socket.socket, command: str
) -> None:
    port = free_port()
    env = production_env(
        tmp_path, trap, REFUNDS_API_PORT=str(port), REFUNDS_WORKER_METRICS_PORT=str(port)
    )
    code, stderr = run_refunds(env, command, watch=port)
    assert code != 0
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("refunds: missing secrets"), stderr
    assert [name for name in MISSING if name not in line] == []
    assert_never_connected(trap)
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "wechatpay").exists()


def test_a_secret_file_that_cannot_be_read_stops_the_api(
    tmp_path: Path, trap: socket.socket
) -> None:
    port = free_port()
    env = production_env(
        tmp_path, trap, REFUNDS_API_PORT=str(port), REFUNDS_JWT_SECRET_FILE="/run/secrets/none"
    )
    code, stderr = run_refunds(env, "api", watch=port)
    assert code != 0
    assert "REFUNDS_JWT_SECRET_FILE=/run/secrets/none cannot be read" in stderr
    assert_never_connected(trap)


def test_token_signs_with_the_dev_data_dir_secret(tmp_path: Path, trap: socket.socket) -> None:
    env = production_env(tmp_path, trap)
    code, stderr = run_refunds(env, "token", "--sub", "alice", "--role", "customer")
    assert code != 0 and "start `refunds dev` first" in stderr
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "jwt_secret").write_text(SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "refunds.cli.main", "token", "--sub", "alice", "--role", "admin"],
        env={
            **env,
            "REFUNDS_JWT_ISSUER": "https://shop.example",
            "REFUNDS_JWT_AUDIENCE": "refunds",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    claims = jwt.decode(
        done.stdout.strip(),
        SECRET,
        algorithms=["HS256"],
        issuer="https://shop.example",
        audience="refunds",
    )
    assert claims["sub"] == "alice" and claims["exp"] > time.time()
