"""`/docs` and `/redoc` served with no internet: Swagger UI and ReDoc from a pinned wheel
(`fastapi-offline`), not FastAPI's default CDN. And the OpenAPI document's finishing touches:
every response names its `Request-Id` header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.errors import DESCRIPTIONS

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"

REQUEST_ID_HEADER = {
    "description": "This request's id: the caller's `Request-Id` (or `X-Request-Id`) when it "
    "is 1-128 characters of `A-Za-z0-9._:-`, else a generated one. Also in the access log.",
    "schema": {"type": "string"},
}


def operation_id(route: APIRoute) -> str:
    """Stable operationIds: the handler's name (`list_refunds`), not FastAPI's path-derived one."""
    return route.name


def install(app: FastAPI) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # The token pasted into Authorize survives a reload of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_request_id_headers(with_query_limit(build()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_query_limit(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation may answer 414: the query-string bound applies before any route."""
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.setdefault("responses", {}).setdefault(
                "414",
                {
                    "description": DESCRIPTIONS[414],
                    "content": {"application/json": {"schema": error}},
                },
            )
    return schema


def with_request_id_headers(schema: dict[str, Any]) -> dict[str, Any]:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {})["Request-Id"] = REQUEST_ID_HEADER
    return schema
