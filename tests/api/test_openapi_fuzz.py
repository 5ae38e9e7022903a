"""The OpenAPI document fuzzed (issue 10): schemathesis sends generated requests, valid and
invalid, to every operation of the real API on the session stack (real PostgreSQL, Temporal and
worker). No answer may be a 5xx, use a status or content type the document does not list, or
break the schema it documents."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import ROUTERS
from tests.stack import Stack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and mode: 16 operations x 2 modes x this stays well under a minute.
EXAMPLES = 20

# Every documented operation, from the routers themselves: a new route is fuzzed without a word.
OPERATIONS = sorted(
    f"{method} {route.path}"
    for router in ROUTERS
    for route in router.routes
    if isinstance(route, APIRoute) and route.include_in_schema
    for method in route.methods or ()
)


@pytest.fixture(scope="session")
def api_schema(stack: Stack) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")


@pytest.fixture(autouse=True)
def no_webhook_endpoint_left_behind(stack: Stack) -> Iterator[None]:
    """The fuzz registers webhook endpoints (any URL is allowed on the test stack): left behind,
    each would hear every later test's events and retry them for days in the background. The
    ones a test made are deleted after it; the fuzz itself runs unchanged."""
    admin = stack.token("fuzz-cleanup", "admin")

    def endpoint_ids() -> set[int]:
        response = httpx.get(f"{stack.api_url}/v1/webhook_endpoints", headers=admin, timeout=30)
        response.raise_for_status()
        return {int(e["id"]) for e in response.json()["items"]}

    before = endpoint_ids()
    yield
    for endpoint_id in sorted(endpoint_ids() - before):
        gone = httpx.delete(
            f"{stack.api_url}/v1/webhook_endpoints/{endpoint_id}", headers=admin, timeout=30
        )
        assert gone.status_code in (204, 404), gone.text


def test_the_fuzzed_operations_are_the_documented_ones(api_schema: BaseSchema) -> None:
    paths = api_schema.raw_schema["paths"]
    documented = sorted(f"{method.upper()} {path}" for path in paths for method in paths[path])
    assert documented == OPERATIONS


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_answer_is_5xx_or_outside_the_documented_responses(
    api_schema: BaseSchema, stack: Stack, label: str
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    # Every role at once, so generated requests get past the role checks to the code behind.
    staff = stack.token("fuzz-staff", "admin", "approver", "ops")
    inputs = (operation.path_parameters, operation.query, operation.headers, operation.body)
    takes_input = any(len(part) for part in inputs)
    # Negative cases break what the operation takes: one that takes nothing has none.
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
            case.call_and_validate(headers=staff, checks=CHECKS, timeout=30)

        fuzz()
