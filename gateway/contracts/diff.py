"""The changes between two OpenAPI documents of one API: each breaking or additive.

The rules a reviewer applies to an API change, one function each: a removed path or
method, a removed response status or field, a changed type or media type, a new required
request field or parameter, a narrowed enum or bound is breaking; what only adds is not.
Schemas are compared by ``schemas.SchemaComparison``, from the side of the client.
"""

from __future__ import annotations

from typing import Any

from gateway.contracts.schemas import Change, Schema, SchemaComparison, Side, resolve

_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def compare_documents(old: Schema, new: Schema) -> list[Change]:
    """Every change from ``old`` to ``new``, in path and method order."""
    comparison = SchemaComparison(old, new)
    old_paths, new_paths = old.get("paths", {}), new.get("paths", {})
    for path in sorted(old_paths.keys() | new_paths.keys()):
        if path not in new_paths:
            comparison.changes.append(Change(True, path, "path removed"))
        elif path not in old_paths:
            comparison.changes.append(Change(False, path, "path added"))
        else:
            _compare_path(comparison, path, old_paths[path], new_paths[path])
    return comparison.changes


def _compare_path(comparison: SchemaComparison, path: str, old: Schema, new: Schema) -> None:
    for method in _METHODS:
        where = f"{method.upper()} {path}"
        if method in old and method not in new:
            comparison.changes.append(Change(True, where, "operation removed"))
        elif method in new and method not in old:
            comparison.changes.append(Change(False, where, "operation added"))
        elif method in old:
            _compare_operation(comparison, where, old[method], new[method])


def _compare_operation(comparison: SchemaComparison, where: str, old: Schema, new: Schema) -> None:
    if new.get("deprecated") and not old.get("deprecated"):
        comparison.changes.append(Change(False, where, "marked deprecated"))
    _compare_parameters(comparison, where, old.get("parameters", []), new.get("parameters", []))
    _compare_request_body(comparison, where, old.get("requestBody"), new.get("requestBody"))
    _compare_responses(comparison, where, old.get("responses", {}), new.get("responses", {}))


def _compare_parameters(
    comparison: SchemaComparison, where: str, old: list[Schema], new: list[Schema]
) -> None:
    old_by_key = _parameters_by_key(comparison.old_document, old)
    new_by_key = _parameters_by_key(comparison.new_document, new)
    for key in sorted(old_by_key.keys() | new_by_key.keys()):
        location, name = key
        label = f"{where} {location} parameter {name}"
        before, after = old_by_key.get(key), new_by_key.get(key)
        if after is None:
            comparison.changes.append(Change(True, label, "parameter removed"))
        elif before is None:
            required = bool(after.get("required"))
            comparison.changes.append(
                Change(required, label, f"new {'required' if required else 'optional'} parameter")
            )
        else:
            if after.get("required") and not before.get("required"):
                comparison.changes.append(Change(True, label, "now required"))
            comparison.compare(
                _absent_rather_than_null(comparison.old_document, before),
                _absent_rather_than_null(comparison.new_document, after),
                "request",
                label,
            )


def _absent_rather_than_null(document: Schema, parameter: Schema) -> Schema:
    """An optional parameter's schema without the ``null`` FastAPI documents for ``X | None``:
    a client leaves the parameter out, it cannot send null, so dropping it breaks no one."""
    schema: Schema = parameter.get("schema", {})
    if parameter.get("required"):
        return schema
    members = schema.get("anyOf")
    if not members:
        return schema
    others = [member for member in members if resolve(document, member).get("type") != "null"]
    if len(others) != 1 or len(others) == len(members):
        return schema
    return {**{key: value for key, value in schema.items() if key != "anyOf"}, **others[0]}


def _parameters_by_key(document: Schema, parameters: list[Schema]) -> dict[tuple[str, str], Schema]:
    resolved = (resolve(document, parameter) for parameter in parameters)
    # Header names are case-insensitive (RFC 9110, section 5.1).
    return {
        (
            parameter["in"],
            parameter["name"].lower() if parameter["in"] == "header" else parameter["name"],
        ): parameter
        for parameter in resolved
    }


def _compare_request_body(
    comparison: SchemaComparison, where: str, old: Schema | None, new: Schema | None
) -> None:
    label = f"{where} request body"
    old = resolve(comparison.old_document, old) if old is not None else None
    new = resolve(comparison.new_document, new) if new is not None else None
    if old is None and new is None:
        return
    if new is None:
        comparison.changes.append(Change(True, label, "no longer accepted"))
        return
    if old is None:
        required = bool(new.get("required"))
        comparison.changes.append(
            Change(required, label, f"new {'required' if required else 'optional'} body")
        )
        return
    if new.get("required") and not old.get("required"):
        comparison.changes.append(Change(True, label, "now required"))
    _compare_content(
        comparison, f"{where} request", old.get("content", {}), new.get("content", {}), side="request"
    )


def _compare_responses(comparison: SchemaComparison, where: str, old: Schema, new: Schema) -> None:
    for status in sorted(old.keys() | new.keys()):
        label = f"{where} response {status}"
        if status not in new:
            comparison.changes.append(Change(True, label, "status no longer documented"))
        elif status not in old:
            comparison.changes.append(Change(False, label, "status added"))
        else:
            before = resolve(comparison.old_document, old[status])
            after = resolve(comparison.new_document, new[status])
            _compare_content(
                comparison, label, before.get("content", {}), after.get("content", {}), side="response"
            )


def _compare_content(
    comparison: SchemaComparison, label: str, old: dict[str, Any], new: dict[str, Any], *, side: Side
) -> None:
    for media_type in sorted(old.keys() - new.keys()):
        what = "media type no longer accepted" if side == "request" else "media type no longer sent"
        comparison.changes.append(Change(True, f"{label} {media_type}", what))
    for media_type in sorted(new.keys() - old.keys()):
        # A response in a media type a client never saw is one it may fail to read.
        breaking = side == "response" and bool(old)
        comparison.changes.append(Change(breaking, f"{label} {media_type}", "media type added"))
    for media_type in sorted(old.keys() & new.keys()):
        comparison.compare(
            old[media_type].get("schema", {}),
            new[media_type].get("schema", {}),
            side,
            f"{label} body",
        )
