"""What every mounted app's schema says of errors and bounds, whatever the app's routes declare."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header, Query
from pydantic import BaseModel, Field

from gateway.errors import PROBLEM_CONTENT_TYPE
from gateway.openapi import document_problem_responses

PROBLEM = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


class Row(BaseModel):
    id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    small: Annotated[int, Field(ge=0, le=10)]
    ratio: Annotated[float, Field(gt=0.5)]


def _schema() -> dict[str, Any]:
    app = FastAPI()

    @app.post("/rows", responses={404: {"description": "No such row."}, 409: {"description": "Taken."}})
    async def add_row(
        row: Row,
        tag: Annotated[str | None, Query(max_length=5)] = None,
        if_match: Annotated[str | None, Header(alias="If-Match", description="A tag.")] = None,
    ) -> Row:
        return row

    document_problem_responses(app)
    return app.openapi()


def test_an_error_documented_without_a_body_gets_the_problem_body() -> None:
    responses = _schema()["paths"]["/rows"]["post"]["responses"]

    assert responses["404"] == {"description": "No such row.", "content": PROBLEM}
    assert responses["409"]["content"] == PROBLEM
    assert "content" in responses["200"]


def test_integer_bounds_are_exact_integers() -> None:
    # FastAPI's OpenAPI models made 2**63 - 1 the float 9.223372036854776e18, i.e. 2**63.
    row = _schema()["components"]["schemas"]["Row"]["properties"]

    assert row["id"]["maximum"] == 2**63 - 1
    assert type(row["id"]["maximum"]) is int, "fastapi.openapi.utils.get_fields_from_routes gone?"
    assert type(row["small"]["maximum"]) is int
    assert row["ratio"]["exclusiveMinimum"] == 0.5


def test_an_optional_parameter_is_documented_as_left_out_never_as_null() -> None:
    # With anyOf [string, null], clients (and fuzzers) sent the text "null": "If-Match: null".
    parameters = {
        parameter["name"]: parameter["schema"]
        for parameter in _schema()["paths"]["/rows"]["post"]["parameters"]
    }

    assert parameters["tag"] == {"type": "string", "maxLength": 5, "title": "Tag"}
    assert parameters["If-Match"] == {"type": "string", "description": "A tag.", "title": "If-Match"}
