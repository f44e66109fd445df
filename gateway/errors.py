"""One error shape for the root and every version: RFC 9457 problem details.

Exception handlers on the root never see exceptions raised inside a mounted FastAPI
app (https://github.com/fastapi/fastapi/issues/1802), so ``install_error_handlers`` is
called on the root and on every version app the gateway mounts, from one place.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from gateway.request_context import current_request_id
from gateway.routing import methods_of_refused_resource

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.types import Send

    ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_PROBLEM_CONTENT_TYPE_BYTES = PROBLEM_CONTENT_TYPE.encode()
# The status recorded for a request whose connection closed before its body arrived
# (nginx's "client closed request"); nobody receives it. The server may have closed the
# connection itself: a malformed or too slow body, answered 400 or 408 by the protocol.
CONNECTION_CLOSED_STATUS = 499
# RFC 9110 renamed these; Python's HTTPStatus has the new names only from 3.13.
_RFC_9110_PHRASES = {413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content"}
logger = logging.getLogger("gateway.errors")


class FieldError(BaseModel):
    location: list[str | int] = Field(
        description="Where the value is: ['body', 'price'], ['query', 'limit']."
    )
    message: str
    type: str = Field(description="Machine-readable error type, e.g. 'greater_than_equal'.")


class Problem(BaseModel):
    """An HTTP error (RFC 9457). Every 4xx and 5xx of the gateway has this shape."""

    type: str = Field(default="about:blank", description="URI of the problem type.")
    title: str = Field(description="The status code's phrase, e.g. 'Not Found'.")
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = Field(default=None, description="The X-Request-ID of the request.")
    errors: list[FieldError] | None = Field(default=None, description="Field-level detail of a 422.")
    versions: list[str] | None = Field(
        default=None, description="On an unknown path: the versions that exist."
    )
    successor: str | None = Field(default=None, description="On 410 Gone: the version to use instead.")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_CONTENT_TYPE


def status_phrase(status: int) -> str:
    return _RFC_9110_PHRASES.get(status) or HTTPStatus(status).phrase


def problem_body(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": status_phrase(status),
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": current_request_id(),
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def problem_bytes(
    status: int, detail: str | None = None, *, instance: str | None = None, **extra: Any
) -> bytes:
    """A problem body, serialised compactly, for code that answers past Starlette's responses."""
    return json.dumps(
        problem_body(status, detail, instance=instance, **extra), separators=(",", ":")
    ).encode()


def problem_headers(body: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """The headers of a problem ``body`` answered through a raw ASGI ``send`` or on the wire."""
    return [
        (b"content-type", _PROBLEM_CONTENT_TYPE_BYTES),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]


async def send_problem(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with a problem ``body`` (from ``problem_bytes``) through a raw ASGI ``send``."""
    await send({"type": "http.response.start", "status": status, "headers": problem_headers(body, *headers)})
    await send({"type": "http.response.body", "body": body})


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    if status in (204, 304):  # These statuses have no body.
        return Response(status_code=status, headers=headers)
    return ProblemResponse(problem_body(status, detail, instance=instance, **extra), status, headers=headers)


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "location": list(error.get("loc", ())),
            "message": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


def _http_exception_handler(known_versions: list[str] | None) -> ExceptionHandler:
    async def handle_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = exc.headers
        allowed = (
            methods_of_refused_resource(request.app.router.routes, request.scope)
            if exc.status_code == 405
            else None
        )
        if allowed is not None:
            # RFC 9110 15.5.6: Allow lists every method of the resource, not the first route's.
            allow = ", ".join(allowed)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})  # RFC 9110 9.3.7.
            headers = {**(headers or {}), "Allow": allow}
        # Starlette's default detail is the phrase itself, which says nothing the title does not.
        detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        versions = known_versions if exc.status_code == 404 else None
        return problem_response(
            exc.status_code, detail, instance=request.url.path, headers=headers, versions=versions
        )

    return handle_http_exception


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422, "The request is not valid.", instance=request.url.path, errors=_field_errors(exc.errors())
    )


async def _connection_closed(request: Request, exc: Exception) -> Response:
    # The client's doing, not the server's: no 500, no traceback.
    logger.info("connection closed before the request body arrived: %s %s", request.method, request.url.path)
    return Response(status_code=CONNECTION_CLOSED_STATUS)


async def _unhandled_error(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after sending this response, so the
    # traceback is logged once, by the edge, with the request id; none reaches the client.
    return problem_response(500, "The server failed to handle the request.", instance=request.url.path)


def install_error_handlers(app: Starlette, *, known_versions: list[str] | None = None) -> None:
    """Render every error of ``app`` as a problem; a 404 at the root lists ``known_versions``."""
    app.add_exception_handler(HTTPException, _http_exception_handler(known_versions))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _connection_closed)
    app.add_exception_handler(Exception, _unhandled_error)
