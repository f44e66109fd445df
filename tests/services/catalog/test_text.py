"""Control characters in the catalog's text, on both stores: refused alike, with a 422 naming the
field, and documented as a pattern (PostgreSQL answered U+0000 with a 500; SQLite stored it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from services.catalog.text import MULTI_LINE_PATTERN, SINGLE_LINE_PATTERN

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.anyio

V2_ITEM = {"name": "Teapot", "price": {"amount": "1.00"}}
# Where each text field enters: (app, method, path, body with TEXT where the field goes, its location).
TEXT_FIELDS = [
    ("v1", "POST", "/items", {"name": "TEXT", "price": 1}, ["body", "name"]),
    ("v1", "PUT", "/items/1", {"name": "TEXT", "price": 1}, ["body", "name"]),
    ("v2", "POST", "/items", {**V2_ITEM, "name": "TEXT"}, ["body", "name"]),
    ("v2", "POST", "/items", {**V2_ITEM, "description": "TEXT"}, ["body", "description"]),
    ("v2", "POST", "/items", {**V2_ITEM, "tags": ["ok", "TEXT"]}, ["body", "tags", 1]),
    ("v2", "PATCH", "/items/1", {"name": "TEXT"}, ["body", "name"]),
    ("v2", "PATCH", "/items/1", {"description": "TEXT"}, ["body", "description"]),
    ("v2", "PATCH", "/items/1", {"tags": ["TEXT"]}, ["body", "tags", 0]),
    (
        "internal",
        "POST",
        "/items/import",
        {"items": [{"id": 1, **V2_ITEM, "name": "TEXT"}]},
        ["body", "items", 0, "name"],
    ),
    (
        "internal",
        "POST",
        "/items/import",
        {"items": [{"id": 1, **V2_ITEM, "tags": ["TEXT"]}]},
        ["body", "items", 0, "tags", 0],
    ),
]
# JSON escapes, written into the body's text as they are: a NUL, an escape, DEL, a lone surrogate.
REFUSED_TEXT = {
    "nul": ("a\\u0000b", "control_character"),
    "escape": ("\\u001b[31mred", "control_character"),
    "delete": ("a\\u007f", "control_character"),
    "lone surrogate": ("a\\ud800b", "string_unicode"),
}


def _body_with(body: dict[str, Any], escaped_text: str) -> bytes:
    return json.dumps(body).replace("TEXT", escaped_text).encode()


@pytest.mark.parametrize(("app", "method", "path", "body", "location"), TEXT_FIELDS)
@pytest.mark.parametrize("text", REFUSED_TEXT, ids=str)
async def test_control_characters_in_any_text_field_are_a_422_naming_the_field(
    mounted_clients: dict[str, httpx.AsyncClient],
    app: str,
    method: str,
    path: str,
    body: dict[str, Any],
    location: list[object],
    text: str,
) -> None:
    escaped, error_type = REFUSED_TEXT[text]
    # Item 1 exists, so that a write to it would otherwise succeed.
    await mounted_clients["v2"].post("/items", json=V2_ITEM)
    response = await mounted_clients[app].request(
        method, path, content=_body_with(body, escaped), headers={"content-type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {"location": location, "type": error_type} in [
        {"location": error["location"], "type": error["type"]} for error in response.json()["errors"]
    ]
    assert (await mounted_clients["v2"].get("/items/1")).json()["name"] == "Teapot"


async def test_a_description_keeps_tabs_and_line_breaks(
    mounted_clients: dict[str, httpx.AsyncClient],
) -> None:
    description = "Line one,\tthen a tab.\r\nLine two.\n"
    created = await mounted_clients["v2"].post("/items", json={**V2_ITEM, "description": description})

    assert created.status_code == 201, created.text
    read = await mounted_clients["v2"].get(created.headers["location"])
    assert read.json()["description"] == description


@pytest.mark.parametrize("text", ["\t", "\n"])
async def test_a_name_or_tag_keeps_no_tab_or_line_break(
    mounted_clients: dict[str, httpx.AsyncClient], text: str
) -> None:
    for body in ({**V2_ITEM, "name": f"a{text}b"}, {**V2_ITEM, "tags": [f"a{text}b"]}):
        assert (await mounted_clients["v2"].post("/items", json=body)).status_code == 422


@pytest.mark.parametrize("tag", ["a\x00", "\x1b", "a\nb"])
async def test_a_tag_query_with_control_characters_is_a_422(
    mounted_clients: dict[str, httpx.AsyncClient], tag: str
) -> None:
    response = await mounted_clients["v2"].get("/items", params={"tag": tag})

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == ["query", "tag"]


async def test_the_rules_are_patterns_in_every_schema(mounted_clients: dict[str, httpx.AsyncClient]) -> None:
    v1 = (await mounted_clients["v1"].get("/openapi.json")).json()
    v2 = (await mounted_clients["v2"].get("/openapi.json")).json()
    internal = (await mounted_clients["internal"].get("/openapi.json")).json()

    assert v1["components"]["schemas"]["ItemIn"]["properties"]["name"]["pattern"] == SINGLE_LINE_PATTERN
    for schema in (
        v2["components"]["schemas"]["ItemCreate"],
        internal["components"]["schemas"]["ImportedItem"],
    ):
        assert schema["properties"]["name"]["pattern"] == SINGLE_LINE_PATTERN
        assert schema["properties"]["tags"]["items"]["pattern"] == SINGLE_LINE_PATTERN
        assert schema["properties"]["description"]["anyOf"][0]["pattern"] == MULTI_LINE_PATTERN
    (tag,) = [
        parameter for parameter in v2["paths"]["/items"]["get"]["parameters"] if parameter["name"] == "tag"
    ]
    assert tag["schema"]["pattern"] == SINGLE_LINE_PATTERN
