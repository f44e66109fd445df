"""One test per rule of ``gateway.contracts``: what breaks a client, and what only adds."""

from __future__ import annotations

import copy
from typing import Any, Literal

import pytest
from fastapi import FastAPI, Header, Query
from pydantic import BaseModel

from gateway.contracts.diff import compare_documents
from gateway.contracts.schemas import Change

Schema = dict[str, Any]


def _document(item: Schema | None = None, **operation: Any) -> Schema:
    """An API with GET /items/{item_id} returning an Item, and POST /items taking one."""
    item = item or {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string", "maxLength": 100},
            "kind": {"type": "string", "enum": ["tool", "toy"]},
        },
        "required": ["id", "name"],
    }
    item_ref = {"$ref": "#/components/schemas/Item"}
    return {
        "openapi": "3.1.0",
        "paths": {
            "/items/{item_id}": {
                "get": {
                    "parameters": [
                        {"in": "path", "name": "item_id", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json": {"schema": item_ref}}},
                        "404": {"description": "missing"},
                    },
                    **operation,
                }
            },
            "/items": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": item_ref}},
                    },
                    "responses": {"201": {"description": "created"}},
                }
            },
        },
        "components": {"schemas": {"Item": item}},
    }


def _changed(change: Any) -> tuple[Schema, Schema]:
    old = _document()
    new = copy.deepcopy(old)
    change(new)
    return old, new


def _item(document: Schema) -> Schema:
    item: Schema = document["components"]["schemas"]["Item"]
    return item


def _only(changes: list[Change], *, breaking: bool) -> list[str]:
    return [str(change) for change in changes if change.breaking is breaking]


def test_identical_documents_have_no_changes() -> None:
    assert compare_documents(_document(), _document()) == []


def test_a_removed_path_and_a_removed_operation_break() -> None:
    old, new = _changed(lambda document: document["paths"].pop("/items"))
    assert _only(compare_documents(old, new), breaking=True) == ["/items: path removed"]

    old, new = _changed(lambda document: document["paths"]["/items"].pop("post"))
    assert _only(compare_documents(old, new), breaking=True) == ["POST /items: operation removed"]


def test_a_new_path_and_a_new_operation_only_add() -> None:
    old, new = _changed(lambda document: document["paths"]["/items"].update(get={"responses": {}}))
    changes = compare_documents(old, new)
    assert _only(changes, breaking=True) == []
    assert _only(changes, breaking=False) == ["GET /items: operation added"]


def test_a_removed_response_field_breaks_and_a_new_one_adds() -> None:
    def change(document: Schema) -> None:
        properties = _item(document)["properties"]
        properties.pop("kind")
        properties["colour"] = {"type": "string"}

    changes = compare_documents(*_changed(change))
    assert "GET /items/{item_id} response 200 body.kind: field removed" in _only(changes, breaking=True)
    assert "GET /items/{item_id} response 200 body.colour: new field" in _only(changes, breaking=False)
    # The same schema as a request body: a field the server no longer reads.
    assert "POST /items request body.kind: field no longer accepted" in _only(changes, breaking=True)


def test_a_response_field_that_may_now_be_absent_breaks() -> None:
    old, new = _changed(lambda document: _item(document)["required"].remove("name"))
    assert "GET /items/{item_id} response 200 body.name: may now be absent" in _only(
        compare_documents(old, new), breaking=True
    )


def test_a_new_required_request_field_breaks_and_an_optional_one_does_not() -> None:
    def required_field(document: Schema) -> None:
        _item(document)["properties"]["sku"] = {"type": "string"}
        _item(document)["required"].append("sku")

    breaking = _only(compare_documents(*_changed(required_field)), breaking=True)
    assert "POST /items request body.sku: new required field" in breaking

    def optional_field(document: Schema) -> None:
        _item(document)["properties"]["sku"] = {"type": "string"}

    changes = compare_documents(*_changed(optional_field))
    assert _only(changes, breaking=True) == []


def test_a_changed_type_breaks_both_sides() -> None:
    old, new = _changed(lambda document: _item(document)["properties"]["id"].update(type="string"))
    breaking = _only(compare_documents(old, new), breaking=True)
    assert "POST /items request body.id: no longer accepts integer (now string)" in breaking
    assert "GET /items/{item_id} response 200 body.id: may now be string (was integer)" in breaking


def test_widening_a_request_type_adds_and_a_nullable_response_breaks() -> None:
    def nullable(document: Schema) -> None:
        _item(document)["properties"]["name"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}

    changes = compare_documents(*_changed(nullable))
    assert "GET /items/{item_id} response 200 body.name: may now be null (was string)" in _only(
        changes, breaking=True
    )
    assert "POST /items request body.name: now also accepts null" in _only(changes, breaking=False)


def test_an_integer_becoming_a_number_adds_to_requests_and_breaks_responses() -> None:
    old, new = _changed(lambda document: _item(document)["properties"]["id"].update(type="number"))
    changes = compare_documents(old, new)
    assert "POST /items request body.id: now also accepts number" in _only(changes, breaking=False)
    assert "GET /items/{item_id} response 200 body.id: may now be number (was integer)" in _only(
        changes, breaking=True
    )


def test_a_narrowed_enum_breaks_requests_and_a_widened_one_breaks_responses() -> None:
    old, new = _changed(lambda document: _item(document)["properties"]["kind"].update(enum=["tool"]))
    assert "POST /items request body.kind: no longer accepts 'toy'" in _only(
        compare_documents(old, new), breaking=True
    )

    old, new = _changed(lambda document: _item(document)["properties"]["kind"]["enum"].append("food"))
    changes = compare_documents(old, new)
    assert "GET /items/{item_id} response 200 body.kind: may now be 'food'" in _only(changes, breaking=True)
    assert "POST /items request body.kind: now also accepts 'food'" in _only(changes, breaking=False)


@pytest.mark.parametrize(
    ("keyword", "before", "after", "breaking"),
    [
        ("maxLength", 100, 50, True),
        ("maxLength", 100, 200, False),
        ("minLength", None, 1, True),
    ],
)
def test_bounds_narrowed_on_a_request_break(
    keyword: str, before: int | None, after: int, breaking: bool
) -> None:
    def change(document: Schema) -> None:
        _item(document)["properties"]["name"][keyword] = after

    old, new = _changed(change)
    if before is None:
        _item(old)["properties"]["name"].pop(keyword, None)
    request_changes = [
        change for change in compare_documents(old, new) if change.where.startswith("POST /items request")
    ]
    assert [change.breaking for change in request_changes] == [breaking]
    assert keyword in request_changes[0].what


def test_a_new_pattern_on_a_request_breaks() -> None:
    old, new = _changed(lambda document: _item(document)["properties"]["name"].update(pattern="^[a-z]+$"))
    assert "POST /items request body.name: must now match '^[a-z]+$'" in _only(
        compare_documents(old, new), breaking=True
    )


def test_parameters_new_required_removed_and_optional() -> None:
    parameter = {"in": "query", "name": "expand", "schema": {"type": "boolean"}}
    old, new = _changed(
        lambda document: document["paths"]["/items/{item_id}"]["get"]["parameters"].append(
            {**parameter, "required": True}
        )
    )
    assert _only(compare_documents(old, new), breaking=True) == [
        "GET /items/{item_id} query parameter expand: new required parameter"
    ]
    old, new = _changed(
        lambda document: document["paths"]["/items/{item_id}"]["get"]["parameters"].append(parameter)
    )
    assert _only(compare_documents(old, new), breaking=False) == [
        "GET /items/{item_id} query parameter expand: new optional parameter"
    ]
    assert _only(compare_documents(new, old), breaking=True) == [
        "GET /items/{item_id} query parameter expand: parameter removed"
    ]


def test_a_removed_status_and_a_changed_media_type_break() -> None:
    old, new = _changed(lambda document: document["paths"]["/items/{item_id}"]["get"]["responses"].pop("404"))
    assert _only(compare_documents(old, new), breaking=True) == [
        "GET /items/{item_id} response 404: status no longer documented"
    ]

    def xml(document: Schema) -> None:
        content = document["paths"]["/items/{item_id}"]["get"]["responses"]["200"]["content"]
        content["application/xml"] = content.pop("application/json")

    assert _only(compare_documents(*_changed(xml)), breaking=True) == [
        "GET /items/{item_id} response 200 application/json: media type no longer sent",
        "GET /items/{item_id} response 200 application/xml: media type added",
    ]


def test_recursive_schemas_are_compared_once() -> None:
    def tree(document: Schema) -> None:
        _item(document)["properties"]["children"] = {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Item"},
        }

    old, new = _changed(tree)
    _item(new)["properties"].pop("kind")
    removed = [change for change in compare_documents(old, new) if change.what == "field removed"]
    assert [change.where for change in removed] == ["GET /items/{item_id} response 200 body.kind"]


def test_changes_between_fastapi_generated_schemas() -> None:
    class ItemV1(BaseModel):
        id: int
        name: str
        price: float

    class ItemV2(BaseModel):
        id: int
        name: str
        price: str
        tags: list[str] = []

    def api(model: type[BaseModel], order: Literal["asc", "desc"] | None) -> Schema:
        app = FastAPI()

        @app.get("/items/{item_id}", response_model=model)
        def read_item(item_id: int, if_none_match: str | None = Header(default=None)) -> Any: ...

        if order is None:

            @app.get("/items")
            def list_items() -> list[int]:
                return []

        else:

            @app.get("/items")
            def list_items_sorted(order: Literal["asc", "desc"] = Query()) -> list[int]:
                return []

        return app.openapi()

    changes = compare_documents(api(ItemV1, None), api(ItemV2, "asc"))
    breaking = _only(changes, breaking=True)
    assert "GET /items query parameter order: new required parameter" in breaking
    assert any(
        line.startswith("GET /items/{item_id} response 200 body.price: may now be string")
        for line in breaking
    )
    assert "GET /items/{item_id} response 200 body.tags: new field" in _only(changes, breaking=False)


def test_an_optional_parameter_that_stops_admitting_null_breaks_no_one() -> None:
    def parameter(schema: Schema) -> Schema:
        return {"in": "header", "name": "If-None-Match", "required": False, "schema": schema}

    old, new = _document(), _document()
    old["paths"]["/items/{item_id}"]["get"]["parameters"].append(
        parameter({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "If-None-Match"})
    )
    new["paths"]["/items/{item_id}"]["get"]["parameters"].append(
        parameter({"type": "string", "maxLength": 100})
    )
    changes = compare_documents(old, new)
    assert [str(change) for change in changes] == [
        "GET /items/{item_id} header parameter if-none-match: maxLength set to 100"
    ]
