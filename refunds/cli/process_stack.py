"""The product's processes as separate children (both sandboxes, the API, N workers), each a
real `refunds ...` process, on a PostgreSQL and a Temporal given by the caller.

`refunds chaos` kills and restarts its workers (`ChaosStack`); `refunds bench` reads each
process's CPU time by its process group (every child leads its own).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import httpx

from refunds.embedded.ports import free_port, wait_for_port
from refunds.embedded.process import ChildProcess
from refunds.gateways.stripe_gateway import SUBSCRIBED_EVENTS


def refunds_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "refunds.cli.main", *args]


class ProcessStack:
    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        temporal_address: str,
        workers: int,
        *,
        timings: Mapping[str, timedelta] | None = None,
        refund_delay: float = 2.0,
        queue_prefix: str = "stack",
        extra_env: Mapping[str, str] | None = None,
        stripe_webhook_events: Sequence[str] | None = SUBSCRIBED_EVENTS,
    ) -> None:
        self.data_dir = data_dir.resolve()
        # The Stripe endpoint's subscription, as a shop following the README sets it; None: all.
        self.stripe_webhook_events = stripe_webhook_events
        self.logs = self.data_dir / "logs"
        self.database_url = database_url
        self.temporal_address = temporal_address
        self.refund_delay = refund_delay
        self.api_port, self.stripe_port, self.wechat_port = free_port(), free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.wechat_url = f"http://127.0.0.1:{self.wechat_port}"
        # Its own task queue: other workers on the same Temporal never take these refunds.
        self.task_queue = f"{queue_prefix}-{uuid.uuid4().hex[:8]}"
        self.env = self._env(timings or {}, extra_env or {})
        self.workers = [self.process(f"worker-{i}", refunds_argv("worker")) for i in range(workers)]
        self.sandboxes: list[ChildProcess] = []
        self.api: ChildProcess | None = None
        self.extra: list[ChildProcess] = []

    def _env(self, timings: Mapping[str, timedelta], extra: Mapping[str, str]) -> dict[str, str]:
        env = {
            **os.environ,
            "REFUNDS_DATA_DIR": str(self.data_dir),
            # Dev mode: every child reads the secrets and keys generated into the data dir.
            "REFUNDS_DEV_SECRETS": "true",
            "REFUNDS_DATABASE_URL": self.database_url,
            "REFUNDS_TEMPORAL_ADDRESS": self.temporal_address,
            "REFUNDS_TASK_QUEUE": self.task_queue,
            "REFUNDS_API_HOST": "127.0.0.1",
            "REFUNDS_API_PORT": str(self.api_port),
            "REFUNDS_PUBLIC_BASE_URL": self.api_url,
            "REFUNDS_STRIPE_API_BASE": self.stripe_url,
            "REFUNDS_WECHATPAY_GATEWAY": self.wechat_url,
        }
        for name, value in timings.items():
            env[f"REFUNDS_{name.upper()}"] = str(value.total_seconds())
        env.pop("REFUNDS_AUTO_APPROVE_LIMIT", None)  # every refund waits for its approver
        env.pop("REFUNDS_WORKER_METRICS_PORT", None)  # two workers cannot share one port
        env.update(extra)
        return env

    def process(self, name: str, argv: list[str]) -> ChildProcess:
        """A child of this stack (not started), logging to `logs/NAME.log`, with its env."""
        return ChildProcess(name, argv, self.logs / f"{name}.log", env=self.env)

    @property
    def children(self) -> list[ChildProcess]:
        api = [self.api] if self.api is not None else []
        return [*self.sandboxes, *api, *self.workers, *self.extra]

    def start(self) -> None:
        self._generate_secrets()
        for name, args in self.sandbox_commands().items():
            child = self.process(name, refunds_argv(*args))
            child.start()
            self.sandboxes.append(child)
        self.api = self.process("api", refunds_argv("api", "--port", str(self.api_port)))
        self.api.start()
        for worker in self.workers:
            worker.start()
        wait_for_port(self.stripe_port, 60, what="stripe sandbox")
        wait_for_port(self.wechat_port, 60, what="wechatpay sandbox")
        self._wait_ready()

    def sandbox_commands(self) -> dict[str, list[str]]:
        """Each sandbox child's `refunds ...` arguments, by child name."""
        delay = ["--refund-delay", str(self.refund_delay)]
        webhook = f"{self.api_url}/v1/webhooks/stripe"
        stripe = ["sandbox", "stripe", "--port", str(self.stripe_port), "--webhook-url", webhook]
        if self.stripe_webhook_events is not None:
            stripe += ["--webhook-events", ",".join(self.stripe_webhook_events)]
        wechat = ["sandbox", "wechatpay", "--port", str(self.wechat_port)]
        return {"sandbox-stripe": stripe + delay, "sandbox-wechatpay": wechat + delay}

    def start_extra(self, name: str, argv: list[str]) -> ChildProcess:
        """Another child stopped with the stack (the bench's bare workers)."""
        child = self.process(name, argv)
        child.start()
        self.extra.append(child)
        return child

    def _generate_secrets(self) -> None:
        """Every child reads the dev secrets and keys from the data dir: make them once, here,
        before children started side by side could each generate their own."""
        from refunds.sandboxes.wechatpay_sandbox import sandbox_config_from_settings
        from refunds.settings import Settings

        sandbox_config_from_settings(Settings(data_dir=self.data_dir, dev_secrets=True))

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200:
                    time.sleep(1.0)  # let the workers finish connecting
                    self.check_alive()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the stack did not become ready; see {self.logs}")

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")

    def stop(self) -> None:
        api = [self.api] if self.api is not None else []
        for child in [*self.extra, *self.workers, *api, *reversed(self.sandboxes)]:
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest regardless
                print(f"stopping {child.name}: {exc}", file=sys.stderr)
