"""Every version's schema documents the shared error shape, from one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.errors import PROBLEM_CONTENT_TYPE, Problem

if TYPE_CHECKING:
    from fastapi import FastAPI

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}}


def _document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(components["Problem"].pop("$defs", {}))
    # FastAPI's own 422 body is replaced by the gateway's problem shape.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _problem_response(
                    "The request is not valid: field-level detail in errors."
                )
            responses.setdefault(
                "default", _problem_response("Any other error, as RFC 9457 problem details.")
            )
    return schema


def document_problem_responses(app: FastAPI) -> None:
    generate = app.openapi

    def openapi_with_problems() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_problems(generate())
        return app.openapi_schema

    # FastAPI documents overriding ``app.openapi`` as the way to customise the schema.
    app.openapi = openapi_with_problems  # type: ignore[method-assign]
