"""`refunds dev`: the whole product on one machine, every part a real server.

Order of start: PostgreSQL (unless REFUNDS_DATABASE_URL), migrations, Temporal dev server,
gateway sandboxes (unless a gateway's base URL is set), worker, API; then demo orders. Ctrl-C or
SIGTERM stops every child, newest first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from refunds.embedded.ports import free_port, port_is_open, wait_for_port
from refunds.embedded.postgres import EmbeddedPostgres
from refunds.embedded.process import ChildProcess
from refunds.embedded.temporal import EmbeddedTemporal
from refunds.gateways.stripe_gateway import SUBSCRIBED_EVENTS


class Stop(Exception):
    """A signal asked us to stop."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def _refunds(*args: str) -> list[str]:
    return [sys.executable, "-m", "refunds.cli.main", *args]


class DevStack:
    def __init__(self, data_dir: Path, api_port: int, temporal_port: int, ui_port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.api_port, self.temporal_port, self.ui_port = api_port, temporal_port, ui_port
        self.logs = self.data_dir / "logs"
        # Dev mode: unset secrets and WeChat Pay keys are generated once into the data dir, and
        # every child (worker, API, sandboxes, schedules) reads the same ones from there.
        self.env: dict[str, str] = {
            **os.environ,
            "REFUNDS_DATA_DIR": str(self.data_dir),
            "REFUNDS_DEV_SECRETS": "true",
            # A shop's receiver on this machine is the usual dev target (issue 13).
            "REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS": os.environ.get(
                "REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"
            ),
        }
        self.stoppers: list[object] = []
        self.info: dict[str, object] = {}
        self.sandboxes: list[str] = []  # the gateways whose sandbox this stack started

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for port, what in (
            (self.api_port, "API"),
            (self.temporal_port, "Temporal"),
            (self.ui_port, "Temporal UI"),
        ):
            if port_is_open(port):
                raise SystemExit(f"port {port} for the {what} is taken: pass another with flags")
        self._database()
        self._temporal()
        self._sandboxes()
        api_url = f"http://127.0.0.1:{self.api_port}"
        self.env.update(
            REFUNDS_API_HOST="127.0.0.1",
            REFUNDS_API_PORT=str(self.api_port),
            REFUNDS_PUBLIC_BASE_URL=self.env.get("REFUNDS_PUBLIC_BASE_URL", api_url),
        )
        self._child("worker", _refunds("worker"))
        self._child("api", _refunds("api", "--port", str(self.api_port)))
        self._wait_ready(api_url)
        self.info["api_url"] = api_url
        self.info["console_url"] = f"{api_url}/console"
        self._schedules()

    def _schedules(self) -> None:
        """The daily reconciliation's Schedule, created or updated (visible in the UI)."""
        done = subprocess.run(
            _refunds("schedules", "apply"), env=self.env, capture_output=True, text=True
        )
        # 134: temporalio may abort a short-lived client at exit after its work (sdk-python#300).
        if done.returncode not in (0, 134) or "schedule" not in done.stdout:
            raise RuntimeError(f"refunds schedules apply failed: {done.stderr[-500:]}")

    def _database(self) -> None:
        if not self.env.get("REFUNDS_DATABASE_URL"):
            pg = EmbeddedPostgres(self.data_dir / "postgres", free_port())
            self.stoppers.append(pg)
            self.env["REFUNDS_DATABASE_URL"] = pg.start()
        from refunds.db.migrate import upgrade

        upgrade(self.env["REFUNDS_DATABASE_URL"])

    def _temporal(self) -> None:
        # Payloads are encrypted: the UI decodes them at the API's codec server, which the
        # browser reaches where the API listens (the public URL, when set).
        api_url = self.env.get("REFUNDS_PUBLIC_BASE_URL") or f"http://127.0.0.1:{self.api_port}"
        temporal = EmbeddedTemporal(
            self.temporal_port,
            self.ui_port,
            self.data_dir / "temporal.sqlite",
            self.logs / "temporal.log",
            codec_endpoint=f"{api_url}/codec",
        )
        self.stoppers.append(temporal)
        self.env["REFUNDS_TEMPORAL_ADDRESS"] = temporal.start()
        self.info.update(temporal_address=temporal.address, temporal_ui_url=temporal.ui_url)
        # The console links each refund to its workflow in this UI, and offers the demo
        # identities on its sign-in page (never outside `refunds dev`).
        self.env.setdefault("REFUNDS_TEMPORAL_UI_URL", temporal.ui_url or "")
        self.env["REFUNDS_CONSOLE_DEMO_SIGN_IN"] = "true"

    def _sandboxes(self) -> None:
        api_url = f"http://127.0.0.1:{self.api_port}"
        if not self.env.get("REFUNDS_STRIPE_API_BASE"):
            port = free_port()
            self._child(
                "sandbox-stripe",
                _refunds(
                    "sandbox",
                    "stripe",
                    "--port",
                    str(port),
                    "--state-file",
                    str(self.data_dir / "sandbox" / "stripe.json"),
                    "--webhook-url",
                    f"{api_url}/v1/webhooks/stripe",
                    # As a shop following the README subscribes its Stripe endpoint.
                    "--webhook-events",
                    ",".join(SUBSCRIBED_EVENTS),
                ),
            )
            self.env["REFUNDS_STRIPE_API_BASE"] = f"http://127.0.0.1:{port}"
            wait_for_port(port, 30, what="stripe sandbox")
            self.sandboxes.append("stripe")
        if not self.env.get("REFUNDS_WECHATPAY_GATEWAY"):
            port = free_port()
            self._child(
                "sandbox-wechatpay",
                _refunds(
                    "sandbox",
                    "wechatpay",
                    "--port",
                    str(port),
                    "--state-file",
                    str(self.data_dir / "sandbox" / "wechatpay.json"),
                ),
            )
            self.env["REFUNDS_WECHATPAY_GATEWAY"] = f"http://127.0.0.1:{port}"
            wait_for_port(port, 30, what="wechatpay sandbox")
            self.sandboxes.append("wechatpay")
        self.info.update(
            stripe_api_base=self.env["REFUNDS_STRIPE_API_BASE"],
            wechatpay_gateway=self.env["REFUNDS_WECHATPAY_GATEWAY"],
        )

    def _child(self, name: str, argv: list[str]) -> ChildProcess:
        child = ChildProcess(name, argv, self.logs / f"{name}.log", env=self.env)
        child.start()
        self.stoppers.append(child)
        return child

    def _wait_ready(self, api_url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the API did not become ready; see {self.logs}")

    def check_children(self) -> None:
        for part in self.stoppers:
            if isinstance(part, ChildProcess) and not part.alive():
                raise RuntimeError(f"{part.name} exited:\n{part.tail()}")

    def stop(self) -> None:
        for part in reversed(self.stoppers):
            try:
                part.stop()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - stop the rest regardless
                print(f"stopping {part}: {exc}", file=sys.stderr)
        self.stoppers.clear()


def run_dev(data_dir: Path, api_port: int, temporal_port: int, ui_port: int) -> int:
    from refunds.cli.seed import demo_tokens, seed_demo_orders

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    stack = DevStack(data_dir, api_port, temporal_port, ui_port)
    try:
        stack.start()
        tokens = demo_tokens(stack.env)
        stack.info["tokens"] = tokens
        stack.info["demo_orders"] = seed_demo_orders(
            stack.env, str(stack.info["api_url"]), tokens["admin"], stack.sandboxes
        )
        (stack.data_dir / "dev.json").write_text(json.dumps(stack.info, indent=2))
        _banner(stack)
        while True:
            stack.check_children()
            time.sleep(1)
    except Stop:
        print("\nstopping…", flush=True)
        return 0
    except (RuntimeError, SystemExit) as exc:
        print(f"refunds dev: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()


def _banner(stack: DevStack) -> None:
    info = stack.info
    print(
        f"""
refunds dev is running (data in {stack.data_dir})
  Console       {info["console_url"]}   (sign in as a demo identity)
  API docs      {info["api_url"]}/docs
  Temporal UI   {info["temporal_ui_url"]}   (filter: RefundStatus="processing")
  Stripe        {info["stripe_api_base"]}
  WeChat Pay    {info["wechatpay_gateway"]}
  dev.json      {stack.data_dir / "dev.json"}  (tokens, demo orders)
Demo tokens:""",
        flush=True,
    )
    for role, token in dict(info["tokens"]).items():  # type: ignore[call-overload]
        print(f"  {role:9} {token}")
    print("Ctrl-C stops everything.", flush=True)
