"""Every version's schema documents the shared error shape, from one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_fields_from_routes
from pydantic import TypeAdapter

from gateway.errors import PROBLEM_CONTENT_TYPE, Problem

if TYPE_CHECKING:
    from fastapi import FastAPI
    from pydantic.json_schema import JsonSchemaMode

_REF_TEMPLATE = "#/components/schemas/{model}"
_PROBLEM_REF = {"$ref": _REF_TEMPLATE.format(model="Problem")}
_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}}


def _is_error_status(status: str) -> bool:
    return status.isdigit() and int(status) >= 400


def _drop_null(parameter: dict[str, Any]) -> None:
    """An optional parameter (``X | None``) is left out of a request, never sent as null: FastAPI
    documents it as ``anyOf: [X, null]``, and clients sent the text ``null`` for it."""
    schema = parameter.get("schema", {})
    options = schema.get("anyOf", [])
    kept = [option for option in options if option != {"type": "null"}]
    if len(options) == 2 and len(kept) == 1:
        del schema["anyOf"]
        parameter["schema"] = {**kept[0], **schema}


def _document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template=_REF_TEMPLATE)
    components.update(components["Problem"].pop("$defs", {}))
    # FastAPI's own 422 body is replaced by the gateway's problem shape.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            for parameter in operation.get("parameters", []):
                _drop_null(parameter)
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _problem_response(
                    "The request is not valid: field-level detail in errors."
                )
            # Every error has the problem body, also where a route documented only the status:
            # a generated client reads the body only of the responses the schema describes.
            for status, response in responses.items():
                if _is_error_status(status) and "content" not in response:
                    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}
            responses.setdefault(
                "default", _problem_response("Any other error, as RFC 9457 problem details.")
            )
    return schema


def _models_of(app: FastAPI) -> list[tuple[int, JsonSchemaMode, TypeAdapter[Any]]]:
    """What the app's routes read and write, as pydantic types with the mode of their schema
    (the fields FastAPI's own ``get_openapi`` builds the components from)."""
    return [
        (number, field.mode, TypeAdapter(field.field_info.annotation))
        for number, field in enumerate(get_fields_from_routes(app.routes))
        if field.field_info.annotation is not None
    ]


def _restore_integers(lossy: Any, exact: Any) -> None:
    """Put back, in ``lossy``, the integers of ``exact`` that it holds as the nearest float."""
    if isinstance(lossy, dict) and isinstance(exact, dict):
        pairs = [(key, lossy[key], exact[key]) for key in lossy.keys() & exact.keys()]
    elif isinstance(lossy, list) and isinstance(exact, list) and len(lossy) == len(exact):
        pairs = list(zip(range(len(lossy)), lossy, exact, strict=True))
    else:
        return
    for key, value, exact_value in pairs:
        if isinstance(value, float) and type(exact_value) is int and float(exact_value) == value:
            lossy[key] = exact_value
        else:
            _restore_integers(value, exact_value)


def _exact_integer_bounds(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    # FastAPI's OpenAPI models hold bounds as floats, so a model's ``le=2**63 - 1`` was
    # documented as 9.223372036854776e18 (2^63, a value the server refuses); pydantic's own
    # schemas of the same models have the exact integers.
    _, exact = TypeAdapter.json_schemas(_models_of(app), ref_template=_REF_TEMPLATE)
    components = schema.get("components", {}).get("schemas", {})
    for name, exact_schema in exact.get("$defs", {}).items():
        if name in components:
            _restore_integers(components[name], exact_schema)
    return schema


def document_problem_responses(app: FastAPI) -> None:
    generate = app.openapi

    def openapi_with_problems() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_problems(_exact_integer_bounds(app, generate()))
        return app.openapi_schema

    # FastAPI documents overriding ``app.openapi`` as the way to customise the schema.
    app.openapi = openapi_with_problems  # type: ignore[method-assign]
