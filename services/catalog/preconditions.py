"""Conditional requests on items, for every version: ETag out, If-Match and If-None-Match in.

A write with ``If-Match`` passes the revisions it names to the store, which checks them in
the UPDATE or DELETE statement itself; a mismatch surfaces as ``RevisionMismatchError``,
which ``web.py`` answers with 412 and the current tag. A missing item stays a 404 whatever
the header says: preconditions apply only to what would otherwise succeed (RFC 9110 13.2.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header
from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from services.catalog.etags import Condition, MalformedConditionError, item_tag, parse_condition
from services.catalog.web import ItemIdPath, item_not_found, json_response, problem_response_doc

if TYPE_CHECKING:
    from pydantic import BaseModel

    from services.catalog.domain import Item

ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": 'The item revision\'s strong entity tag, e.g. `"42-3"`: send it back in If-Match or If-None-Match.',
        "schema": {"type": "string"},
    }
}


# What a client may send in If-Match and If-None-Match: `*` or a comma-separated list of
# entity tags, ASCII only. parse_condition accepts a little more (empty list elements, obs-text),
# as RFC 9110 asks of a recipient; the schema documents what a client should send.
_ENTITY_TAG_PATTERN = r'(W/)?"[\x21\x23-\x7E]*"'
CONDITION_PATTERN = rf"^(\*|{_ENTITY_TAG_PATTERN}([ \t]*,[ \t]*{_ENTITY_TAG_PATTERN})*)$"
_ConditionText = Annotated[str, Field(json_schema_extra={"pattern": CONDITION_PATTERN})]

MALFORMED_CONDITION_RESPONSE = problem_response_doc("A malformed If-Match or If-None-Match header.")
NOT_MODIFIED_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "The item still has the tag If-None-Match names; no body.", "headers": ETAG_HEADER},
    400: MALFORMED_CONDITION_RESPONSE,
}
PRECONDITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: MALFORMED_CONDITION_RESPONSE,
    412: problem_response_doc(
        "The item is no longer at a revision If-Match names: read it again. ETag is its current tag.",
        headers=ETAG_HEADER,
    ),
}


def _parse(header_name: str, value: str) -> Condition:
    try:
        return parse_condition(value)
    except MalformedConditionError as error:
        raise HTTPException(400, f"malformed {header_name} header: {error}") from None


async def _expected_revisions(
    item_id: ItemIdPath,
    if_match: Annotated[
        _ConditionText | None,
        Header(
            alias="If-Match",
            description=(
                "Write only if the item is still at this revision: its ETag (or several,"
                " comma-separated), or `*` for any. Otherwise 412 Precondition Failed."
            ),
        ),
    ] = None,
) -> frozenset[int] | None:
    return None if if_match is None else _parse("If-Match", if_match).revisions_of(item_id)


def if_none_match_condition(if_none_match: str | None) -> Condition | None:
    """The condition an ``IfNoneMatch`` header states; 400 when it is malformed."""
    return None if if_none_match is None else _parse("If-None-Match", if_none_match)


# The revisions If-Match accepts, for the store's ``expected_revisions`` (None: any).
ExpectedRevisions = Annotated[frozenset[int] | None, Depends(_expected_revisions)]
# A header parameter, not a dependency: each dependency costs FastAPI a resolution of its own
# on every request, and a read by id is worth little more than that. Parse it with
# ``if_none_match_condition`` before reading.
IfNoneMatch = Annotated[
    _ConditionText | None,
    Header(
        alias="If-None-Match",
        description="Answer 304 Not Modified, without a body, while the item still has this ETag (or `*`).",
    ),
]


def etag_of(item: Item) -> str:
    return str(item_tag(item.id, item.revision))


def not_modified(condition: Condition | None, item: Item) -> Response | None:
    """304 with the tag when ``condition`` (If-None-Match) matches the item, else None."""
    if condition is None or not condition.matches_weakly(item_tag(item.id, item.revision)):
        return None
    return Response(status_code=304, headers={"ETag": etag_of(item)})


def tagged_response(item: Item, body: BaseModel) -> Response:
    """200 with ``body`` (the item's representation) as JSON and the item's ETag."""
    return json_response(body, headers={"ETag": etag_of(item)})


def tagged(item: Item | None, item_id: int, response: Response) -> Item:
    """The item a route answers with, its ETag set on ``response``; 404 when there is none."""
    if item is None:
        raise item_not_found(item_id)
    response.headers["ETag"] = etag_of(item)
    return item
