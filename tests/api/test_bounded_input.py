"""Bounded input: every query and form parameter of the API and the console matches a strict
pattern with a size bound before any arithmetic, and a hostile value is refused at once (4xx)
without stalling the event loop for anyone else.

The time bound asserted is loose (1 s), as a safety property, not a benchmark: before the
patterns, `min_amount=1e999996` held the event loop for tens of seconds."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from api.console import format as fmt
from tests.api.console_support import bearer, console_api, signed_in
from tests.factories import Shop, uid
from tests.stack import Stack

HOSTILE = ["1e999996", "1e1000000", "1E5", "-1", "1,000", "NaN", "Infinity", "0x10", "9" * 16]
HOSTILE += ["1.23456", " ", "1 000", "١٢٣"]
SAFE_SECONDS = 1.0


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> str:
    return console_api(stack)


@pytest_asyncio.fixture
async def approver(stack: Stack, console_url: str) -> AsyncIterator[httpx.AsyncClient]:
    http = await signed_in(console_url, bearer(stack, uid("approver"), "approver"))
    yield http
    await http.aclose()


async def timed(http: httpx.AsyncClient, path: str, **params: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await http.get(path, params=params)
    return response, time.perf_counter() - started


async def raw_get(base_url: str, target: str, cookie: str = "") -> tuple[int, bytes, float]:
    """A GET over a bare socket: httpx refuses to send a URL over 64 KiB, a hostile client
    does not."""
    url = httpx.URL(base_url)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = f"GET {target} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n"
    writer.write((head + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n").encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2], time.perf_counter() - started


@pytest.mark.parametrize("value", ["30.5", "30", "0.0001", "123456789012345.1234"])
def test_an_amount_in_major_units_is_read_exactly(value: str) -> None:
    whole, _, fraction = value.partition(".")
    expected = int(whole) * 100 + round(int((fraction or "0").ljust(4, "0")) / 100)
    assert fmt.to_minor(value, 2) == expected


@pytest.mark.parametrize("value", HOSTILE)
def test_an_amount_that_is_not_plain_digits_is_no_bound(value: str) -> None:
    started = time.perf_counter()
    assert fmt.to_minor(value, 2) is None
    assert time.perf_counter() - started < SAFE_SECONDS


@pytest.mark.parametrize("value", HOSTILE)
async def test_a_hostile_inbox_amount_is_a_422_page_at_once(
    approver: httpx.AsyncClient, value: str
) -> None:
    response, took = await timed(approver, "/console/inbox", min_amount=value)
    assert response.status_code == 422, response.text[:500]
    assert "text/html" in response.headers["content-type"]
    assert "validation_error" in response.text and took < SAFE_SECONDS


async def test_the_inbox_amount_filter_compares_minor_units(
    shop: Shop, approver: httpx.AsyncClient
) -> None:
    order = await shop.order("stripe", 10000)
    refund = await shop.refund(order, 3050)  # $30.50, pending approval
    shown = await approver.get("/console/inbox", params={"min_amount": "30.5"})
    hidden = await approver.get("/console/inbox", params={"min_amount": "30.51"})
    assert shown.status_code == hidden.status_code == 200
    assert refund["refund_no"] in shown.text and refund["refund_no"] not in hidden.text


async def test_healthz_answers_while_hostile_values_are_refused(
    stack: Stack, approver: httpx.AsyncClient
) -> None:
    values = ("1e999996", "1e1000000")
    hostile = [timed(approver, "/console/inbox", min_amount=v) for v in values]
    long = raw_get(str(approver.base_url), "/console/inbox?max_amount=" + "1" * 100_000)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as other:
        health = timed(other, "/healthz")
        refused, (status, _, long_took), (ok, health_took) = await asyncio.gather(
            asyncio.gather(*hostile), long, health
        )
    assert ok.status_code == 200 and health_took < SAFE_SECONDS
    assert all(r.status_code == 422 and took < SAFE_SECONDS for r, took in refused)
    # So long a request line is refused by the HTTP server itself (400) before the app sees it.
    assert 400 <= status < 500 and long_took < SAFE_SECONDS


async def test_a_query_string_over_its_bound_is_414_in_the_error_shape(stack: Stack) -> None:
    status, body, took = await raw_get(stack.api_url, "/v1/refunds?cursor=" + "A" * 10_000)
    assert status == 414 and took < SAFE_SECONDS
    assert json.loads(body)["error"] == {
        "type": "invalid_request_error",
        "code": "query_too_long",
        "message": "the query string is over 4096 bytes",
        "param": None,
    }


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/v1/refunds", "cursor", "A" * 65),
        ("/v1/refunds", "cursor", "not base64!"),
        ("/v1/reconciliations", "cursor", "a/b"),
        ("/v1/events", "cursor", "=" * 10),
        ("/v1/events", "refund_no", "R" * 65),
        ("/v1/events", "refund_no", "R 1"),
        ("/v1/refunds", "order_no", "O" * 65),
        ("/v1/refunds", "limit", "1e999996"),
    ],
)
async def test_an_api_parameter_out_of_its_pattern_is_422_validation_error(
    stack: Stack, path: str, param: str, value: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        response = await http.get(path, params={param: value}, headers=stack.token("a", "admin"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("validation_error", param)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/console/search", {"q": "R" * 81}),
        ("/console/search", {"q": "R\x00"}),
        ("/console/ops", {"processing_minutes": "1e999996"}),
        ("/console/inbox", {"min_age": "9" * 40}),
        ("/console/sign-in", {"next": "/console/\x01"}),
    ],
)
async def test_a_console_parameter_out_of_its_pattern_is_a_4xx_page(
    stack: Stack, console_url: str, path: str, params: dict[str, str]
) -> None:
    admin = await signed_in(console_url, bearer(stack, uid("admin"), "admin", "ops"))
    try:
        response, took = await timed(admin, path, **params)
    finally:
        await admin.aclose()
    assert response.status_code == 422 and took < SAFE_SECONDS
    assert "text/html" in response.headers["content-type"]


async def test_a_console_form_with_a_field_over_its_bound_is_refused(
    approver: httpx.AsyncClient,
) -> None:
    response = await approver.post(
        "/console/refunds/R-none/decision", data={"csrf": "x" * 20_000, "action": "approve"}
    )
    assert response.status_code == 422
    assert "form_field_too_long" in response.text
