"""`refunds api` and the gateway sandboxes keep an idle connection open longer than their clients
do (issue 11: the bench's `httpx.ReadError`). A server that closes an idle connection in the
moment a client reuses it resets the client's request unanswered; httpx keeps an idle connection
5 s, uvicorn's default keep-alive is 5 s too, and the worker's gateway clients (requests) keep
theirs until the server closes them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path

import httpx
import pytest

from refunds.bench.phases import IDLE_CONNECTION_SECONDS, http_client
from refunds.embedded.ports import free_port, wait_for_port

HTTPX_IDLE_SECONDS = httpx.Limits().keepalive_expiry or 5.0
UVICORN_KEEP_ALIVE_SECONDS = 5.0  # uvicorn's default


@contextmanager
def serving(tmp_path: Path, database_url: str, *command: str) -> Iterator[int]:
    """`refunds COMMAND --port P` as a process of its own, until the block ends: its port."""
    port = free_port()
    env = {
        **os.environ,
        "REFUNDS_DATA_DIR": str(tmp_path),
        "REFUNDS_DATABASE_URL": database_url,
        "REFUNDS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # not asked by /healthz
    }
    with (tmp_path / f"{command[-1]}.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "refunds.cli.main", *command, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, 60, what=" ".join(command))
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def api_port(tmp_path: Path, database_url: str) -> Iterator[int]:
    with serving(tmp_path, database_url, "api") as port:
        yield port


def get_healthz(conn: HTTPConnection, path: str = "/healthz") -> int:
    """The status of a GET on this connection, asserted to be the same socket."""
    before = conn.sock.getsockname() if conn.sock else None
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    assert before is None or conn.sock.getsockname() == before
    return response.status


def test_the_api_answers_on_a_connection_idle_longer_than_httpx_keeps_one(api_port: int) -> None:
    conn = HTTPConnection("127.0.0.1", api_port, timeout=10)
    try:
        assert get_healthz(conn) == 200
        time.sleep(HTTPX_IDLE_SECONDS + 1)
        assert get_healthz(conn) == 200  # RemoteDisconnected: closed under the client
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("gateway", "path"),
    [("stripe", "/_sandbox/refunds"), ("wechatpay", "/v3/certificates")],
)
def test_a_sandbox_answers_on_a_connection_idle_longer_than_uvicorns_default(
    tmp_path: Path, database_url: str, gateway: str, path: str
) -> None:
    with serving(tmp_path, database_url, "sandbox", gateway) as port:
        conn = HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            first = get_healthz(conn, path)
            time.sleep(UVICORN_KEEP_ALIVE_SECONDS + 1)
            assert get_healthz(conn, path) == first  # RemoteDisconnected: closed under us
        finally:
            conn.close()


async def local_port(http: httpx.AsyncClient, url: str) -> int:
    response = await http.get(url)
    assert response.status_code == 200
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


async def test_the_bench_drops_an_idle_connection_well_before_a_default_uvicorn_would(
    api_port: int,
) -> None:
    assert IDLE_CONNECTION_SECONDS <= UVICORN_KEEP_ALIVE_SECONDS / 2
    url = f"http://127.0.0.1:{api_port}/healthz"
    async with http_client(concurrency=1) as http:
        first = await local_port(http, url)
        assert await local_port(http, url) == first  # kept while busy
        time.sleep(IDLE_CONNECTION_SECONDS + 0.5)
        assert await local_port(http, url) != first  # idle too long: a fresh connection
