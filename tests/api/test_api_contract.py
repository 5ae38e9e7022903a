"""The API's contract beside its routes (issue 10): the error shape, Request-Id on every answer,
one access-log line per request, the body size limit, currencies in either case, and an OpenAPI
document that Swagger UI can use (bearer scheme, enums, stable operationIds, documented errors)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.middleware import BodyLimit, RequestContext
from refunds.runtime.logging import JsonFormatter
from tests.factories import Shop, uid

LIMIT = 64 * 1024


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_a_validation_error_names_the_field_as_param(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    as_string = await shop.request_refund(order, "10")  # type: ignore[arg-type]
    assert as_string.status_code == 422
    assert error(as_string) | {"message": ""} == {
        "type": "invalid_request_error",
        "code": "validation_error",
        "message": "",
        "param": "amount",
    }
    bad_sku = await shop.request_refund(order, 10, items=[{"sku": "a b", "quantity": 1}])
    assert (bad_sku.status_code, error(bad_sku)["param"]) == (422, "items.0.sku")
    not_json = await shop.http.post(
        "/v1/refunds", content=b"{", headers={**shop.customer, "Content-Type": "application/json"}
    )
    assert (not_json.status_code, error(not_json)["param"]) == (422, None)


async def test_each_kind_of_failure_has_its_type(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    refund = await shop.refund(order, 1000)
    answers = {
        "authentication_error": await shop.http.get("/v1/refunds"),
        "permission_error": await shop.http.get("/v1/refunds", headers=shop.customer),
        "not_found_error": await shop.http.get(f"/v1/refunds/{uid('rf')}", headers=shop.ops),
        "conflict_error": await shop.request_refund(order, 2001),
    }
    for kind, response in answers.items():
        assert error(response)["type"] == kind, response.text
        assert error(response)["param"] is None
    mismatch = await shop.request_refund(order, 100, currency="EUR")
    assert error(mismatch) | {"message": ""} == {
        "type": "invalid_request_error",
        "code": "currency_mismatch",
        "message": "",
        "param": "currency",
    }
    assert refund["status"] == "pending_approval"


async def test_every_answer_carries_a_request_id_and_a_sane_one_is_the_callers(
    shop: Shop,
) -> None:
    generated = await shop.http.get("/healthz")
    assert generated.headers["Request-Id"].startswith("req_")
    mine = await shop.http.get("/v1/refunds", headers={"Request-Id": "shop-42:a.b_c"})
    assert (mine.status_code, mine.headers["Request-Id"]) == (401, "shop-42:a.b_c")
    legacy = await shop.http.get(
        f"/v1/orders/{uid('ord')}", headers={**shop.admin, "X-Request-Id": "abc-1"}
    )
    assert (legacy.status_code, legacy.headers["Request-Id"]) == (404, "abc-1")
    for insane in ("has space", "x" * 129, "a\tb", ""):
        response = await shop.http.get("/healthz", headers={"Request-Id": insane})
        assert response.headers["Request-Id"].startswith("req_"), insane
    first, second = await shop.http.get("/healthz"), await shop.http.get("/healthz")
    assert first.headers["Request-Id"] != second.headers["Request-Id"]


async def access_records(caplog: pytest.LogCaptureFixture, request_id: str) -> list[Any]:
    """The request's access-log records: written just after its answer went out, so wait a bit."""
    for _ in range(50):
        records = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
        if records:
            await asyncio.sleep(0.1)  # and no second line comes
            return [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
        await asyncio.sleep(0.05)
    return []


async def test_each_request_writes_one_json_access_line_without_secrets(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refunds.access")
    request_id = uid("trace")
    refund_no = uid("rf")
    response = await shop.http.get(
        f"/v1/refunds/{refund_no}", headers={**shop.ops, "Request-Id": request_id}
    )
    assert response.status_code == 404
    records = await access_records(caplog, request_id)
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    entry = json.loads(line)
    assert entry["logger"] == "refunds.access"
    assert {k: entry[k] for k in ("method", "path", "status", "request_id")} == {
        "method": "GET",
        "path": "/v1/refunds/{refund_no}",
        "status": 404,
        "request_id": request_id,
    }
    assert isinstance(entry["duration_ms"], float)
    token = shop.ops["Authorization"].split()[1]
    assert token not in line and "authorization" not in line.lower() and refund_no not in line


@pytest.mark.parametrize("path", ["/v1/refunds", "/v1/orders", "/v1/webhooks/stripe"])
async def test_a_body_over_the_limit_is_413_before_anything_reads_it(shop: Shop, path: str) -> None:
    big = b'{"pad": "' + b"x" * LIMIT + b'"}'
    declared = await shop.http.post(
        path, content=big, headers={**shop.admin, "Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert error(declared) | {"message": ""} == {
        "type": "invalid_request_error",
        "code": "request_too_large",
        "message": "",
        "param": None,
    }
    assert declared.headers["Request-Id"].startswith("req_")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = await shop.http.post(path, content=chunks(), headers=shop.admin)
    assert "content-length" not in streamed.request.headers
    assert (streamed.status_code, error(streamed)["code"]) == (413, "request_too_large")


async def test_a_body_within_the_limit_reaches_the_route(shop: Shop) -> None:
    order = await shop.order(amount=3000)
    reason = "r" * 400
    padded = json.dumps({"order_no": order["order_no"], "amount": 100, "reason": reason})
    response = await shop.http.post(
        "/v1/refunds",
        content=padded.encode().ljust(LIMIT, b" "),
        headers={**shop.customer, "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text


async def test_the_limit_is_the_setting(shop: Shop) -> None:
    api = shop.stack.api(shop.stack.settings.model_copy(update={"max_body_bytes": 1024}))
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        body = {"order_no": uid("ord"), "amount": 100, "reason": "r" * 500}
        small = await client.post("/v1/refunds", json=body, headers=shop.admin)
        large = await client.post(
            "/v1/refunds", json={**body, "reason": "r" * 1000}, headers=shop.admin
        )
    assert (small.status_code, large.status_code) == (404, 413)


async def test_the_limit_holds_for_any_size_and_streams_are_counted() -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body())})

    app = RequestContext(BodyLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), 10))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/", content=b"x" * 10)).json() == {"size": 10}
        assert (await client.post("/", content=b"x" * 11)).status_code == 413

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"xxxx"

        refused = await client.post("/", content=stream())
        assert (refused.status_code, refused.headers["Request-Id"][:4]) == (413, "req_")


async def test_an_unexpected_failure_is_a_json_500_with_its_request_id() -> None:
    async def boom(_: Request) -> JSONResponse:
        raise RuntimeError("a bug")

    # As in the API: the server's own error middleware outside, ours inside it.
    app = Starlette(routes=[Route("/", boom)], middleware=[Middleware(RequestContext)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers={"Request-Id": "bug-1"})
    assert (response.status_code, response.headers["Request-Id"]) == (500, "bug-1")
    assert error(response)["type"] == "api_error"
    assert "a bug" not in response.text


async def test_currency_in_lower_case_is_accepted_and_stored_upper_case(shop: Shop) -> None:
    order = await shop.order(amount=3000, currency="usd")
    assert order["currency"] == "USD"
    again = {k: order[k] for k in ("order_no", "user_id", "channel", "total_amount")}
    same = await shop.http.post(
        "/v1/orders",
        json={
            **again,
            "currency": "USD",
            "paid_amount": order["paid_amount"],
            "payment_ref": order["payment_ref"],
            "items": order["items"],
        },
        headers=shop.admin,
    )
    assert same.status_code == 200, same.text
    refund = await shop.refund(order, 1000, currency="usd")
    assert (refund["currency"], refund["status"]) == ("USD", "pending_approval")


async def test_openapi_declares_a_bearer_scheme_enums_and_stable_operation_ids(
    http: httpx.AsyncClient,
) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    operations = {
        f"{method.upper()} {path}": op
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    assert {label: op["operationId"] for label, op in operations.items()} == OPERATION_IDS
    for label, op in operations.items():
        names = [p["name"].lower() for p in op.get("parameters", [])]
        assert "authorization" not in names, label
        guarded = (
            "/v1/orders",
            "/v1/refunds",
            "/v1/reconciliations",
            "/v1/webhook_endpoints",
            "/v1/events",
        )
        if label.split()[1].startswith(guarded):
            assert op["security"] == [{"bearer": []}], label
            assert op["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }
        for response in op["responses"].values():
            assert "Request-Id" in response["headers"], label
    schemas = spec["components"]["schemas"]
    refund = schemas["RefundOut"]["properties"]
    assert [refund[f]["$ref"].rsplit("/", 1)[1] for f in ("status", "channel", "source")] == [
        "RefundStatus",
        "Channel",
        "RefundSource",
    ]
    assert set(schemas["RefundStatus"]["enum"]) >= {"pending_approval", "abnormal"}
    assert schemas["ErrorDetail"]["required"] == ["type", "code", "message", "param"]


OPERATION_IDS = {
    "POST /v1/webhook_endpoints": "create_endpoint",
    "GET /v1/webhook_endpoints": "list_endpoints",
    "GET /v1/webhook_endpoints/{endpoint_id}": "get_endpoint",
    "PATCH /v1/webhook_endpoints/{endpoint_id}": "update_endpoint",
    "DELETE /v1/webhook_endpoints/{endpoint_id}": "delete_endpoint",
    "POST /v1/webhook_endpoints/{endpoint_id}/rotate_secret": "rotate_secret",
    "GET /v1/events": "list_events",
    "GET /v1/events/{event_id}": "get_event",
    "POST /v1/events/{event_id}/redeliver": "redeliver_event",
    "GET /healthz": "healthz",
    "GET /readyz": "readyz",
    "GET /metrics": "metrics",
    "POST /v1/orders": "create_order",
    "GET /v1/orders/{order_no}": "get_order",
    "POST /v1/orders/{order_no}/cancel": "cancel_order",
    "POST /v1/refunds": "create_refund",
    "GET /v1/refunds": "list_refunds",
    "GET /v1/refunds/{refund_no}": "get_refund",
    "POST /v1/refunds/{refund_no}/approve": "approve_refund",
    "POST /v1/refunds/{refund_no}/reject": "reject_refund",
    "POST /v1/refunds/{refund_no}/resolve": "resolve_refund",
    "GET /v1/reconciliations": "list_reconciliations",
    "GET /v1/reconciliations/{reconciliation_id}": "get_reconciliation",
    "POST /v1/webhooks/stripe": "stripe_webhook",
    "POST /v1/webhooks/wechatpay": "wechatpay_webhook",
}


async def test_docs_are_served_from_this_api_not_a_cdn(http: httpx.AsyncClient) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await http.get(page)).text
        assert f"/docs-assets/{asset}" in html and "cdn." not in html, page
        assert (await http.get(f"/docs-assets/{asset}")).status_code == 200
