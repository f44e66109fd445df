"""Opaque keyset cursors: the id of the last item a page showed.

A cursor names a position, not an offset, so a page boundary stays put while items are
inserted and deleted between requests. The ``id:`` prefix leaves room for another format.
"""

from __future__ import annotations

import base64
import binascii
import re

from services.catalog.tables import MAX_ITEM_ID

_PAYLOAD = re.compile(r"id:([1-9][0-9]{0,18})")
# Longer input cannot be a cursor we issued; refuse it before decoding anything.
_MAX_CURSOR_LENGTH = 64


class InvalidCursorError(ValueError):
    """A cursor this service did not issue."""


def encode_cursor(last_id: int) -> str:
    payload = f"id:{last_id}".encode("ascii")
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> int:
    """The id after which the next page starts."""
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH or not cursor.isascii():
        raise InvalidCursorError("malformed cursor")
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        payload = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError("malformed cursor") from None
    match = _PAYLOAD.fullmatch(payload)
    if match is None or int(match.group(1)) > MAX_ITEM_ID:
        raise InvalidCursorError("malformed cursor")
    return int(match.group(1))
