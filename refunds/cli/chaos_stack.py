"""The processes a chaos run drives: both sandboxes, the API and N workers, each a real
`refunds ...` child process, on a PostgreSQL and a Temporal given by the caller.

Workers are the ones that die: `kill_worker` sends SIGKILL to the whole process group (no
graceful shutdown, in-flight activities and workflow tasks simply vanish), `restart_worker`
starts a fresh process in its place.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

from refunds.embedded.ports import free_port, wait_for_port
from refunds.embedded.process import ChildProcess

# Short waits (REFUNDS_* settings) so the run takes minutes, with margins so that no refund goes
# abnormal only because of injected faults: a gateway call gives up after 2 s, the chaos stall
# lasts longer (see CHAOS_DELAY), retries back off to 1 s, polls every 1.5-4 s.
CHAOS_TIMINGS: dict[str, timedelta] = {
    "approval_timeout": timedelta(minutes=30),
    "outcome_poll_interval": timedelta(seconds=1.5),
    "outcome_poll_max_interval": timedelta(seconds=4),
    # Short, so late refunds turn abnormal soon; an abnormal refund still settles by itself
    # when the gateway answers, so a slow one is not lost either.
    "outcome_deadline": timedelta(seconds=30),
    "abnormal_poll_interval": timedelta(seconds=2),
    "gateway_call_timeout": timedelta(seconds=2),
    "gateway_retry_initial": timedelta(milliseconds=200),
    "gateway_retry_max": timedelta(seconds=1),
}
CHAOS_DELAY = 3.0  # seconds a "timeout" stalls: past the 2 s client timeout
REFUND_DELAY = 1.0  # seconds a sandbox refund stays pending


def _refunds(*args: str) -> list[str]:
    return [sys.executable, "-m", "refunds.cli.main", *args]


class ChaosStack:
    def __init__(
        self, data_dir: Path, database_url: str, temporal_address: str, workers: int
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.database_url = database_url
        self.api_port, self.stripe_port, self.wechat_port = free_port(), free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.wechat_url = f"http://127.0.0.1:{self.wechat_port}"
        self.env = self._env(temporal_address)
        self.workers = [self._process(f"worker-{i}", _refunds("worker")) for i in range(workers)]
        self.others: list[ChildProcess] = []

    def _env(self, temporal_address: str) -> dict[str, str]:
        env = {
            **os.environ,
            "REFUNDS_DATA_DIR": str(self.data_dir),
            # Dev mode: every child reads the secrets and keys generated into the data dir.
            "REFUNDS_DEV_SECRETS": "true",
            "REFUNDS_DATABASE_URL": self.database_url,
            "REFUNDS_TEMPORAL_ADDRESS": temporal_address,
            # Its own task queue: other workers on the same Temporal never take these refunds.
            "REFUNDS_TASK_QUEUE": f"chaos-{uuid.uuid4().hex[:8]}",
            "REFUNDS_API_HOST": "127.0.0.1",
            "REFUNDS_API_PORT": str(self.api_port),
            "REFUNDS_PUBLIC_BASE_URL": self.api_url,
            "REFUNDS_STRIPE_API_BASE": self.stripe_url,
            "REFUNDS_WECHATPAY_GATEWAY": self.wechat_url,
        }
        for name, value in CHAOS_TIMINGS.items():
            env[f"REFUNDS_{name.upper()}"] = str(value.total_seconds())
        env.pop("REFUNDS_AUTO_APPROVE_LIMIT", None)  # every refund waits for its approver
        env.pop("REFUNDS_WORKER_METRICS_PORT", None)  # two workers cannot share one port
        return env

    def _process(self, name: str, argv: list[str]) -> ChildProcess:
        return ChildProcess(name, argv, self.logs / f"{name}.log", env=self.env)

    def start(self) -> None:
        self._generate_secrets()
        delay = str(REFUND_DELAY)
        webhook = f"{self.api_url}/v1/webhooks/stripe"
        stripe = ["sandbox", "stripe", "--port", str(self.stripe_port), "--webhook-url", webhook]
        wechat = ["sandbox", "wechatpay", "--port", str(self.wechat_port)]
        for name, args in (("sandbox-stripe", stripe), ("sandbox-wechatpay", wechat)):
            child = self._process(name, _refunds(*args, "--refund-delay", delay))
            child.start()
            self.others.append(child)
        api = self._process("api", _refunds("api", "--port", str(self.api_port)))
        api.start()
        self.others.append(api)
        for worker in self.workers:
            worker.start()
        wait_for_port(self.stripe_port, 60, what="stripe sandbox")
        wait_for_port(self.wechat_port, 60, what="wechatpay sandbox")
        self._wait_ready()

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
        raise RuntimeError(f"the chaos stack did not become ready; see {self.logs}")

    def check_alive(self) -> None:
        for child in [*self.others, *self.workers]:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")

    def kill_worker(self, index: int) -> int:
        """SIGKILL the worker's process group; returns the pid that died."""
        worker = self.workers[index]
        assert worker.proc is not None
        pid = worker.proc.pid
        os.killpg(pid, signal.SIGKILL)
        worker.proc.wait(10)
        worker.stop()  # already dead: only closes its log
        return pid

    def restart_worker(self, index: int) -> None:
        self.workers[index].start()

    def stop(self) -> None:
        for child in [*self.workers, *reversed(self.others)]:
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest regardless
                print(f"stopping {child.name}: {exc}", file=sys.stderr)
