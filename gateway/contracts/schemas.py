"""What a change to one JSON Schema means for the clients of an API.

A request schema and a response schema break clients in opposite directions: a server
that accepts less than before breaks the clients that send (a new required field, a
narrower enum or bound, a type no longer accepted), a server that may answer more than
before breaks the clients that read (a removed or optional field, a new type or enum
value). ``SchemaComparison`` walks two schemas side by side and reports each difference
once, as breaking or additive, from the side it is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["request", "response"]
Schema = dict[str, Any]

# Bounds a request schema narrows by raising them, and by lowering them.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "multipleOf")
# JSON Schema's "number" accepts every "integer".
_WIDER_TYPE = {"integer": "number"}


@dataclass(frozen=True)
class Change:
    """One difference between two contracts, located in words a reviewer reads."""

    breaking: bool
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class SchemaComparison:
    """Compares schemas of two documents, each resolving its own ``$ref``s."""

    old_document: Schema
    new_document: Schema
    changes: list[Change] = field(default_factory=list)
    _compared: set[tuple[str, str, str, Side]] = field(default_factory=set)

    def compare(self, old: Schema, new: Schema, side: Side, where: str) -> None:
        operation = " ".join(where.split(" ", 2)[:2])
        pair = (old.get("$ref", ""), new.get("$ref", ""), operation, side)
        if pair[0] and pair[1]:
            # The same pair of named schemas is compared once per operation and side: it
            # may recur (a tree of items), and a reviewer needs each difference once.
            if pair in self._compared:
                return
            self._compared.add(pair)
        old, new = resolve(self.old_document, old), resolve(self.new_document, new)
        self._compare_types(old, new, side, where)
        self._compare_enums(old, new, side, where)
        if side == "request":
            self._compare_bounds(old, new, where)
        self._compare_format(old, new, where)
        self._compare_properties(old, new, side, where)
        self._compare_members(old, new, side, where)

    def _report(self, breaking: bool, where: str, what: str) -> None:
        self.changes.append(Change(breaking, where, what))

    def _compare_types(self, old: Schema, new: Schema, side: Side, where: str) -> None:
        old_types = types_of(self.old_document, old)
        new_types = types_of(self.new_document, new)
        if old_types is None or new_types is None or old_types == new_types:
            return
        if side == "request":
            refused = {kind for kind in old_types if not _accepts(new_types, kind)}
            if refused:
                self._report(True, where, f"no longer accepts {_words(refused)} (now {_words(new_types)})")
            elif new_types - old_types:
                self._report(False, where, f"now also accepts {_words(new_types - old_types)}")
        else:
            surprising = {kind for kind in new_types if not _accepts(old_types, kind)}
            if surprising:
                self._report(True, where, f"may now be {_words(surprising)} (was {_words(old_types)})")

    def _compare_enums(self, old: Schema, new: Schema, side: Side, where: str) -> None:
        old_values, new_values = old.get("enum"), new.get("enum")
        if side == "request" and new_values is not None:
            refused = [value for value in (old_values or []) if value not in new_values]
            if old_values is None:
                self._report(True, where, f"now accepts only {_values(new_values)}")
            elif refused:
                self._report(True, where, f"no longer accepts {_values(refused)}")
            elif len(new_values) > len(old_values):
                added = [value for value in new_values if value not in old_values]
                self._report(False, where, f"now also accepts {_values(added)}")
        elif side == "response" and old_values is not None:
            added = [value for value in (new_values or []) if value not in old_values]
            if new_values is None:
                self._report(True, where, f"is no longer limited to {_values(old_values)}")
            elif added:
                self._report(True, where, f"may now be {_values(added)}")

    def _compare_bounds(self, old: Schema, new: Schema, where: str) -> None:
        for keyword in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
            before, after = old.get(keyword), new.get(keyword)
            if after is None or before == after:
                continue
            narrower = before is None or (after > before if keyword in _LOWER_BOUNDS else after < before)
            if keyword == "multipleOf":
                narrower = before is None or after % before != 0
            self._report(
                narrower,
                where,
                f"{keyword} {'set to' if before is None else 'changed to'} "
                f"{after}" + ("" if before is None else f" (was {before})"),
            )
        if new.get("pattern") is not None and new.get("pattern") != old.get("pattern"):
            was = f" (was {old['pattern']!r})" if "pattern" in old else ""
            self._report(True, where, f"must now match {new['pattern']!r}{was}")

    def _compare_format(self, old: Schema, new: Schema, where: str) -> None:
        if "format" in old and "format" in new and old["format"] != new["format"]:
            self._report(True, where, f"format changed from {old['format']} to {new['format']}")

    def _compare_properties(self, old: Schema, new: Schema, side: Side, where: str) -> None:
        old_properties, new_properties = (
            properties_of(self.old_document, old),
            properties_of(self.new_document, new),
        )
        if old_properties is None or new_properties is None:
            return
        old_required, new_required = required_of(self.old_document, old), required_of(self.new_document, new)
        for name in old_properties.keys() - new_properties.keys():
            what = "field no longer accepted" if side == "request" else "field removed"
            self._report(True, f"{where}.{name}", what)
        for name in sorted(new_properties.keys() - old_properties.keys()):
            if side == "request" and name in new_required:
                self._report(True, f"{where}.{name}", "new required field")
            else:
                self._report(
                    False, f"{where}.{name}", "new field" + (" (optional)" if side == "request" else "")
                )
        for name in sorted(old_properties.keys() & new_properties.keys()):
            if side == "request" and name in new_required and name not in old_required:
                self._report(True, f"{where}.{name}", "now required")
            if side == "response" and name in old_required and name not in new_required:
                self._report(True, f"{where}.{name}", "may now be absent")
            self.compare(old_properties[name], new_properties[name], side, f"{where}.{name}")

    def _compare_members(self, old: Schema, new: Schema, side: Side, where: str) -> None:
        if "items" in old and "items" in new:
            self.compare(old["items"], new["items"], side, f"{where}[]")
        old_member, new_member = (
            self._only_member(self.old_document, old),
            self._only_member(self.new_document, new),
        )
        if old_member is not None and new_member is not None:
            # Optional[Model] is anyOf [Model, null]: the nullability was compared with the
            # types, the model is compared here.
            self.compare(old_member, new_member, side, where)

    @staticmethod
    def _only_member(document: Schema, schema: Schema) -> Schema | None:
        members = [
            member
            for member in schema.get("anyOf") or schema.get("oneOf") or []
            if resolve(document, member).get("type") != "null"
        ]
        return members[0] if len(members) == 1 else None


def resolve(document: Schema, schema: Schema) -> Schema:
    """The schema a local ``$ref`` points at (``#/components/...``), followed to the end."""
    seen: set[str] = set()
    while "$ref" in schema and schema["$ref"] not in seen:
        reference = schema["$ref"]
        seen.add(reference)
        target: Any = document
        for part in reference.removeprefix("#/").split("/"):
            target = (
                target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            )
        schema = target if isinstance(target, dict) else {}
    return schema


def types_of(document: Schema, schema: Schema) -> set[str] | None:
    """The JSON types a schema admits; None when it does not say (any value)."""
    schema = resolve(document, schema)
    if "type" in schema:
        declared = schema["type"]
        return set(declared) if isinstance(declared, list) else {declared}
    if "const" in schema and schema["const"] is None:
        return {"null"}
    members = schema.get("anyOf") or schema.get("oneOf")
    if members:
        union: set[str] = set()
        for member in members:
            member_types = types_of(document, member)
            if member_types is None:
                return None
            union |= member_types
        return union
    if "properties" in schema:
        return {"object"}
    return None


def properties_of(document: Schema, schema: Schema) -> dict[str, Schema] | None:
    """An object schema's properties, those of its ``allOf`` parts included."""
    schema = resolve(document, schema)
    properties = dict(schema.get("properties", {})) if "properties" in schema else None
    for part in schema.get("allOf", []):
        part_properties = properties_of(document, part)
        if part_properties is not None:
            properties = {**(properties or {}), **part_properties}
    return properties


def required_of(document: Schema, schema: Schema) -> set[str]:
    schema = resolve(document, schema)
    required = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        required |= required_of(document, part)
    return required


def _accepts(types: set[str], kind: str) -> bool:
    return kind in types or _WIDER_TYPE.get(kind) in types


def _words(types: set[str]) -> str:
    return " or ".join(sorted(types))


def _values(values: list[Any]) -> str:
    return ", ".join(repr(value) for value in values)
