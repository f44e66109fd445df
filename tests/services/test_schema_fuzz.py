"""Fuzz every mounted catalog schema against the gateway, in process, on both stores.

The developers' guide: a client generated from a version's OpenAPI document must never get a
5xx, nor a 4xx for a request the schema allows. Schemathesis generates requests from each
document that the gateway serves (/v1, /v2, /internal with an allow-listed identity) and sends
them through the whole root app. Positive cases (what the schema allows) run every check below;
negative cases (what it does not) must still get a documented 4xx, never a 5xx.

What a request the schema allows may still get, because it depends on the catalog's state
rather than on the request's form (``_STATE_DEPENDENT``): 404 (no item has this id), 409
(an import meeting a concurrent create; an Idempotency-Key in progress), 412 (If-Match names
another revision), 304 (If-None-Match names the current one). And three refusals that JSON
Schema cannot express, each recognised by its own detail (``_UNEXPRESSIBLE``): a cursor the
server did not issue (opaque, like an id that does not exist), an Idempotency-Key already used
with another body, and an import batch naming one id twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.settings import INTERNAL_FACTORY
from tests.conftest import catalog_versions, gateway_settings
from tests.identities import presenting, spiffe_id

if TYPE_CHECKING:
    from collections.abc import Iterator

    from schemathesis import Case, Response
    from starlette.types import ASGIApp

FUZZER = "schema-fuzzer"
# Examples per operation and mode: the whole module stays well under a minute on both stores.
POSITIVE_EXAMPLES = 25
NEGATIVE_EXAMPLES = 10
_STATE_DEPENDENT = ["2xx", "304", "404", "409", "412"]
_UNEXPRESSIBLE = {
    400: "the cursor is malformed",
    422: "this Idempotency-Key was used with another request body",
}
_DUPLICATE_IMPORT_ID = "appears more than once"
_CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": _STATE_DEPENDENT}}}
)


@pytest.fixture
def gateway(database_url: str) -> Iterator[ASGIApp]:
    settings = gateway_settings(
        database_url=database_url,
        versions=catalog_versions(),
        internal_app=INTERNAL_FACTORY,
        internal_allow={
            "GET /internal/items/export": [spiffe_id(FUZZER)],
            "POST /internal/items/import": [spiffe_id(FUZZER)],
        },
    )
    try:
        yield presenting(create_app(settings), FUZZER)
    finally:
        # Schemathesis runs the app's lifespan in its own event loop; it ends here, before the
        # database the lifespan's pool holds is dropped.
        asgi.shutdown_lifespans()


def _refused_for_what_a_schema_cannot_say(response: Response) -> bool:
    if response.headers.get("content-type") != ["application/problem+json"]:
        return False
    problem = response.json()
    detail = problem.get("detail") or ""
    if _UNEXPRESSIBLE.get(response.status_code, "\0") in detail:
        return True
    messages = [error["message"] for error in problem.get("errors") or []]
    return response.status_code == 422 and any(_DUPLICATE_IMPORT_ID in message for message in messages)


def _check(case: Case[Any]) -> None:
    response = case.call()
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and not _refused_for_what_a_schema_cannot_say(response):
        checks.append(positive_data_acceptance)
    case.validate_response(response, checks=checks)


def _fuzz(operation: Any, mode: GenerationMode, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        _check(case)

    run()


@pytest.mark.parametrize("mount", ["/v1", "/v2", "/internal"])
def test_no_request_a_schema_allows_is_refused_and_none_fails(gateway: ASGIApp, mount: str) -> None:
    schema = schemathesis.openapi.from_asgi(f"{mount}/openapi.json", gateway, config=_CONFIG)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert operations
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
        _fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
