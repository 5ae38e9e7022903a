"""The real stack the end-to-end tests drive: PostgreSQL, Temporal, both sandboxes, the API on a
real port and the worker as a separate process that a test may kill and restart."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from api.auth import issue_token
from api.main import create_app
from refunds.embedded.ports import free_port
from refunds.embedded.process import ChildProcess
from refunds.runtime.payload_codec import new_key_text
from refunds.sandboxes.background import BackgroundServer
from refunds.settings import Settings

# Short waits so every branch runs in seconds; each is a setting, never a sleep in the code.
TEST_TIMINGS: dict[str, Any] = {
    "approval_timeout": timedelta(minutes=10),
    "outcome_poll_interval": timedelta(seconds=2),
    "outcome_poll_max_interval": timedelta(seconds=4),
    "outcome_deadline": timedelta(minutes=5),
    "abnormal_poll_interval": timedelta(seconds=3),
    "gateway_call_timeout": timedelta(seconds=5),
    "gateway_retry_initial": timedelta(milliseconds=200),
    "gateway_retry_max": timedelta(seconds=1),
    "webhook_timeout": timedelta(seconds=3),
    "webhook_retry_initial": timedelta(milliseconds=200),
    "webhook_retry_max": timedelta(seconds=1),
    "webhook_sweep_interval": timedelta(seconds=2),
}


# The session's payload key, shared by the stack's processes and the test process itself.
TEST_PAYLOAD_KEYS = "test:" + new_key_text()


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as REFUNDS_* variables, for the worker process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None or name == "auto_approve_limit":
            continue
        if isinstance(value, timedelta):
            value = str(value.total_seconds())
        env[f"REFUNDS_{name.upper()}"] = str(value)
    if settings.auto_approve_limit:
        env["REFUNDS_AUTO_APPROVE_LIMIT"] = ",".join(
            f"{k}={v}" for k, v in settings.auto_approve_limit.items()
        )
    return env


@dataclass
class Stack:
    settings: Settings
    api_url: str
    stripe_url: str
    wechat_url: str
    worker: ChildProcess
    servers: list[BackgroundServer] = field(default_factory=list)

    def token(self, sub: str, *roles: str) -> dict[str, str]:
        assert self.settings.jwt_secret is not None
        return {
            "Authorization": f"Bearer {issue_token(self.settings.jwt_secret, sub, list(roles))}"
        }

    def restart_worker(self) -> None:
        self.worker.stop()
        self.worker.start()

    def kill_worker(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities are simply lost."""
        assert self.worker.proc is not None
        self.worker.proc.kill()
        self.worker.proc.wait(10)

    def api(self, settings: Settings | None = None) -> str:
        """Another API process on the same stack, e.g. with shorter timeouts for one test."""
        server = BackgroundServer(create_app(settings or self.settings), free_port())
        self.servers.append(server)
        return server.start()

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.worker.stop()


def start_stack(tmp: Path, database_url: str, temporal_address: str) -> Stack:
    from refunds.sandboxes.stripe_sandbox import StripeSandboxConfig
    from refunds.sandboxes.stripe_sandbox import create_app as stripe_app
    from refunds.sandboxes.wechatpay_sandbox import create_app as wechat_app
    from refunds.sandboxes.wechatpay_sandbox import sandbox_config_from_settings

    api_port, stripe_port, wechat_port = free_port(), free_port(), free_port()
    settings = Settings(
        data_dir=tmp,
        dev_secrets=True,  # secrets and WeChat Pay keys generated into tmp, shared with the worker
        database_url=database_url,
        temporal_address=temporal_address,
        api_host="127.0.0.1",
        api_port=api_port,
        stripe_api_base=f"http://127.0.0.1:{stripe_port}",
        wechatpay_gateway=f"http://127.0.0.1:{wechat_port}",
        worker_metrics_port=free_port(),
        # The tests' webhook receivers listen on 127.0.0.1.
        webhook_allow_private_targets=True,
        # The test process reads what the stack seals (webhook secrets): one key for both.
        payload_keys=TEST_PAYLOAD_KEYS,
        **TEST_TIMINGS,
    )
    assert settings.stripe_api_key is not None
    servers = [
        BackgroundServer(
            stripe_app(
                StripeSandboxConfig(
                    api_key=settings.stripe_api_key,
                    webhook_secret=settings.stripe_webhook_secret,
                    webhook_url=f"{settings.api_url}/v1/webhooks/stripe",
                    refund_delay=0.3,
                )
            ),
            stripe_port,
        ),
        BackgroundServer(
            wechat_app(sandbox_config_from_settings(settings, refund_delay=0.3)), wechat_port
        ),
        BackgroundServer(create_app(settings), api_port),
    ]
    for server in servers:
        server.start()
    worker = ChildProcess(
        "worker",
        [sys.executable, "-m", "refunds.cli.main", "worker"],
        tmp / "worker.log",
        env={**os.environ, **settings_env(settings)},
    )
    worker.start()
    stack = Stack(
        settings,
        settings.api_url,
        settings.stripe_api_base or "",
        settings.wechatpay_gateway or "",
        worker,
        servers,
    )
    _wait_for_worker(stack)
    return stack


def _wait_for_worker(stack: Stack) -> None:
    """Ready when the API is ready and the worker is still alive after connecting."""
    response = httpx.get(f"{stack.api_url}/readyz", timeout=30)
    assert response.status_code == 200, response.text
    time.sleep(1.5)
    assert stack.worker.alive(), stack.worker.tail()
