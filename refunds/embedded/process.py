"""A supervised child process: started in its own process group, stopped with its children."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import IO


class ChildProcess:
    """Owns one server process; `stop()` signals its group, then SIGKILL after a grace."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        **popen: object,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.argv = argv
        self.log_path = log_path
        self._popen_kwargs = popen
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **self._popen_kwargs,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(self.stop_signal)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
