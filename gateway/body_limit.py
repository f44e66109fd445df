"""Request bodies over the limit get 413 without being read or buffered past it.

A declared ``Content-Length`` over the limit is refused before the app runs; a chunked
body is counted as it arrives and refused at the first chunk that crosses the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from starlette.types import Message, Receive


class RequestBodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException, so every app renders it as its 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"The request body is larger than {limit} bytes.", headers={"Connection": "close"}
        )


def declared_too_large(content_length: bytes | None, limit: int) -> bool:
    # A malformed Content-Length never reaches the app: the HTTP parser rejects it.
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


def limited_receive(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        if received > limit:
            raise RequestBodyTooLarge(limit)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestBodyTooLarge(limit)
        return message

    return receive_within_limit
