"""Each catalog schema, as the gateway mounts it, is no looser than the server and describes
every error's body: a client generated from it gets no 4xx for a request the schema allows,
and reads the problem body of every error it documents."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PROBLEM_CONTENT_TYPE
from gateway.registry import build_mounted_app
from gateway.settings import INTERNAL_FACTORY
from services.catalog.etags import parse_condition
from services.catalog.idempotency import (
    IDEMPOTENCY_KEY_MAX_HEADER_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    parse_idempotency_key,
)
from services.catalog.preconditions import CONDITION_PATTERN
from services.catalog.tables import MAX_ITEM_ID
from tests.conftest import gateway_settings

if TYPE_CHECKING:
    import httpx

FACTORIES = {"v1": "services.v1:create_app", "v2": "services.v2:create_app", "internal": INTERNAL_FACTORY}


def _schema(name: str, sqlite_url: str) -> dict[str, Any]:
    return build_mounted_app(FACTORIES[name], gateway_settings(database_url=sqlite_url)).openapi()


def _header_schema(schema: dict[str, Any], path: str, method: str, header: str) -> dict[str, Any]:
    (parameter,) = [
        parameter
        for parameter in schema["paths"][path][method]["parameters"]
        if parameter["in"] == "header" and parameter["name"] == header
    ]
    header_schema: dict[str, Any] = parameter["schema"]
    # Left out when absent, so never documented as nullable (clients sent `If-Match: null`).
    assert header_schema["type"] == "string"
    return header_schema


@pytest.mark.parametrize("name", FACTORIES)
def test_every_documented_error_has_the_problem_body(name: str, sqlite_url: str) -> None:
    schema = _schema(name, sqlite_url)
    for path, path_item in schema["paths"].items():
        for method, operation in path_item.items():
            for status, response in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    assert response["content"] == {
                        PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (method, path, status)


def test_an_imported_id_has_the_exact_maximum_the_server_enforces(sqlite_url: str) -> None:
    item_id = _schema("internal", sqlite_url)["components"]["schemas"]["ImportedItem"]["properties"]["id"]
    assert item_id["maximum"] == MAX_ITEM_ID
    assert type(item_id["maximum"]) is int


@pytest.mark.parametrize(
    ("name", "path", "method", "header"),
    [
        ("v1", "/items/{item_id}", "get", "If-None-Match"),
        ("v1", "/items/{item_id}", "put", "If-Match"),
        ("v2", "/items/{item_id}", "patch", "If-Match"),
        ("v2", "/items/{item_id}", "delete", "If-Match"),
    ],
)
def test_conditional_headers_are_documented_with_their_pattern(
    name: str, path: str, method: str, header: str, sqlite_url: str
) -> None:
    assert _header_schema(_schema(name, sqlite_url), path, method, header)["pattern"] == CONDITION_PATTERN


def test_the_idempotency_key_is_documented_with_its_pattern_and_length(sqlite_url: str) -> None:
    key = _header_schema(_schema("v2", sqlite_url), "/items", "post", "Idempotency-Key")
    assert (key["pattern"], key["minLength"], key["maxLength"]) == (
        IDEMPOTENCY_KEY_PATTERN,
        1,
        IDEMPOTENCY_KEY_MAX_HEADER_LENGTH,
    )


@pytest.mark.parametrize("value", ["null", "", "abc", '"1-1', '"1-1",,"1-2"', 'W/"a"b', "**"])
def test_the_condition_pattern_refuses_what_is_not_a_tag_list(value: str) -> None:
    assert re.fullmatch(CONDITION_PATTERN, value) is None


# The server's parsers accept every value the documented patterns allow.
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.from_regex(CONDITION_PATTERN, fullmatch=True))
def test_every_condition_the_schema_allows_parses(value: str) -> None:
    parse_condition(value)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.from_regex(IDEMPOTENCY_KEY_PATTERN, fullmatch=True))
def test_every_idempotency_key_the_schema_allows_parses(value: str) -> None:
    assert len(value) <= IDEMPOTENCY_KEY_MAX_HEADER_LENGTH
    parse_idempotency_key(value)


@pytest.mark.anyio
async def test_if_match_null_is_still_a_400_problem(mounted_clients: dict[str, httpx.AsyncClient]) -> None:
    await mounted_clients["v2"].post("/items", json={"name": "Teapot", "price": {"amount": "1.00"}})
    response = await mounted_clients["v2"].patch(
        "/items/1", json={"name": "Kettle"}, headers={"If-Match": "null"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
