from __future__ import annotations

import base64

import pytest

from services.catalog.cursor import InvalidCursorError, decode_cursor, encode_cursor
from services.catalog.tables import MAX_ITEM_ID


@pytest.mark.parametrize("last_id", [1, 7, 12345, MAX_ITEM_ID])
def test_cursors_round_trip(last_id: int) -> None:
    cursor = encode_cursor(last_id)

    assert decode_cursor(cursor) == last_id
    # Safe in a query string without escaping.
    assert cursor.replace("-", "").replace("_", "").isalnum()


def _encoded(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "é",
        "A" * 65,
        _encoded("42"),
        _encoded("id:"),
        _encoded("id:0"),
        _encoded("id:-1"),
        _encoded("id:007"),
        _encoded("id:1 "),
        _encoded(f"id:{MAX_ITEM_ID + 1}"),
        _encoded("offset:5"),
    ],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
