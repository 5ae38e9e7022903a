"""The console's pages fuzzed as the API's operations are (tests/api/test_openapi_fuzz.py): the
console is left out of the API's OpenAPI document (`include_in_schema=False`: it is HTML for
people, not a contract), so its GET routes get a document of their own, generated from the
console's routers by FastAPI as the API's is. Schemathesis sends generated requests, valid and
invalid, with a signed-in session of every role; no answer may be a 5xx, and every refusal is a
4xx."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema

from api.console import actions, pages, signin
from api.console.session import COOKIE
from tests.api.console_support import bearer, console_api, signed_in
from tests.factories import uid
from tests.stack import Stack

EXAMPLES = 20
ROUTES = [
    route
    for module in (signin, pages, actions)
    for route in module.router.routes
    if isinstance(route, APIRoute) and "GET" in (route.methods or ())
]
OPERATIONS = sorted(f"GET {route.path}" for route in ROUTES)


def console_schema() -> dict[str, Any]:
    """The OpenAPI document of the console's GET routes: the same routes, shown."""
    shown = []
    for route in ROUTES:
        one = copy.copy(route)
        one.include_in_schema = True
        shown.append(one)
    return get_openapi(title="Refunds console", version="0", routes=shown)


@pytest.fixture(scope="module")
def schema() -> BaseSchema:
    return schemathesis.openapi.from_dict(console_schema())


@pytest.fixture(scope="module")
async def console(stack: Stack) -> tuple[str, str]:
    """The console's URL and a session cookie of a person holding every staff role."""
    url = console_api(stack)
    http = await signed_in(url, bearer(stack, uid("fuzz"), "admin", "approver", "ops"))
    cookie = http.cookies.get(COOKIE, path="/console")
    await http.aclose()
    assert cookie
    return url, cookie


def test_every_console_page_is_in_its_document(schema: BaseSchema) -> None:
    paths = schema.raw_schema["paths"]
    documented = sorted(f"{method.upper()} {path}" for path in paths for method in paths[path])
    assert documented == OPERATIONS
    inbox = {p["name"]: p for p in paths["/console/inbox"]["get"]["parameters"]}
    assert inbox["min_amount"]["schema"]["maxLength"] == 20


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_console_page_answers_5xx(
    schema: BaseSchema, console: tuple[str, str], label: str
) -> None:
    url, cookie = console
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    takes_input = any(len(part) for part in (operation.path_parameters, operation.query))
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE][: 2 if takes_input else 1]
    for mode in modes:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:
            response = case.call(base_url=url, cookies={COOKIE: cookie}, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])
            assert response.status_code < 500

        fuzz()
