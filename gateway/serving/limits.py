"""The request limits both of the gateway's HTTP protocols enforce, and how they refuse.

Uvicorn enforces none of these (under the Uvicorn worker Gunicorn's ``limit_request_*``
settings do nothing either), so the gateway's protocols count a request head's bytes
themselves, before any parser buffers them, time request bodies (``body_pace``), and
answer 400, 408, 414, 431 or 503 with the gateway's problem body and an X-Request-ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import problem_bytes, problem_headers, status_phrase
from gateway.request_context import REQUEST_ID_HEADER, accept_or_generate_request_id

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.types import Receive, Scope, Send

HEALTH_PATH_PREFIX = "/health/"
# While draining, an idle keep-alive connection gets this long to bring one more request
# (answered with Connection: close) before it is closed. A client in steady traffic sends
# within milliseconds; closing at once would reset a request already on its way.
DRAIN_IDLE_GRACE_SECONDS = 1.0
# Pipelined requests a connection may have parsed and queued behind the one being answered;
# past the high mark reading pauses until the queue is down to the low mark. Browsers do not
# pipeline, and clients that do gain nothing from a deeper queue than this.
PIPELINE_HIGH_WATER = 16
PIPELINE_LOW_WATER = 4
# The request line is "METHOD SP target SP HTTP/1.1"; the method and version are short.
REQUEST_LINE_OVERHEAD = 32
# The blank line that ends a head; a bare LF is accepted too (RFC 9112, section 2.2), as h11 does.
_END_OF_HEAD = re.compile(b"\n\r?\n")
# A header line continued on the next (obs-fold, RFC 9112 section 5.2): h11 unfolds it, and a
# proxy that does not would read a folded Transfer-Encoding differently, so it is refused.
_FOLDED_LINE = re.compile(b"\n[ \t]")


@dataclass(frozen=True)
class HttpLimits:
    max_request_line: int
    max_header_count: int
    max_header_bytes: int
    header_timeout: float
    max_connections: int
    body_timeout: float
    body_min_rate: float
    body_rate_grace: float

    @property
    def max_head_bytes(self) -> int:
        """The most bytes a request head (request line and headers) may take."""
        return self.max_header_bytes + self.max_request_line + REQUEST_LINE_OVERHEAD


class RefusedError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    @classmethod
    def target_too_long(cls, limits: HttpLimits) -> RefusedError:
        return cls(414, f"The request target is longer than {limits.max_request_line} bytes.")

    @classmethod
    def too_many_headers(cls, limits: HttpLimits) -> RefusedError:
        return cls(431, f"The request has more than {limits.max_header_count} headers.")

    @classmethod
    def headers_too_large(cls, limits: HttpLimits) -> RefusedError:
        return cls(431, f"The request headers are larger than {limits.max_header_bytes} bytes.")

    @classmethod
    def malformed(cls) -> RefusedError:
        return cls(400, "The request is not valid HTTP/1.1 (RFC 9112): its framing or syntax is malformed.")

    @classmethod
    def ambiguous_framing(cls) -> RefusedError:
        return cls(
            400,
            "The request's length is ambiguous: Content-Length with Transfer-Encoding, "
            "or more than one Content-Length.",
        )

    @classmethod
    def body_too_slow(cls, reason: str) -> RefusedError:
        return cls(408, f"The request body did not arrive in time: {reason}.")

    def response_bytes(self, incoming_request_id: bytes | None = None) -> bytes:
        """The whole refusal, for a protocol that answers before any ASGI cycle exists."""
        headers, body = _problem(self.status, self.detail, incoming_request_id)
        head = f"HTTP/1.1 {self.status} {status_phrase(self.status)}\r\n"
        head += "".join(f"{name.decode()}: {value.decode()}\r\n" for name, value in headers)
        return (head + "\r\n").encode("latin-1") + body

    async def respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same refusal as an ASGI app, for a protocol that decides once the head is parsed."""
        headers, body = _problem(self.status, self.detail, incoming_request_id(scope["headers"]))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def incoming_request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The request's own X-Request-ID, which a refusal keeps as the edge would (when well-formed)."""
    return next((value for name, value in headers if name == REQUEST_ID_HEADER), None)


def _problem(
    status: int, detail: str, incoming_request_id: bytes | None, *extra: tuple[bytes, bytes]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    # The edge's id rule, so a refusal made before any app runs is traced like any answer.
    request_id = accept_or_generate_request_id(incoming_request_id)
    body = problem_bytes(status, detail, request_id=request_id)
    # Refused or shed: the connection goes too, or a pooling client keeps it.
    headers = problem_headers(
        body, (REQUEST_ID_HEADER, request_id.encode()), *extra, (b"connection", b"close")
    )
    return headers, body


async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer past the connection cap: 503, retry in a second, and the connection closed."""
    headers, body = _problem(
        503,
        "The worker has reached its connection limit; retry shortly.",
        incoming_request_id(scope["headers"]),
        (b"retry-after", b"1"),
    )
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestHeadMeter:
    """Counts the bytes of one request head as they arrive, before the parser sees them:
    httptools buffers a request line or header value of any size before calling back, and
    h11 a whole head, so their callbacks and events alone would not bound memory."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """Count the next request's head from its first byte on."""
        self.bytes_seen = 0
        self.complete = False
        self._tail = b""
        self._request_line_ended = False

    def measure(self, data: bytes) -> RefusedError | None:
        """Count ``data``; the refusal once the head is over a limit, else None."""
        if self.complete:
            return None
        line_limit = self.limits.max_request_line + REQUEST_LINE_OVERHEAD
        if not self._request_line_ended:
            line_end = data.find(b"\n")
            self._request_line_ended = line_end != -1
            line_length = self.bytes_seen + (len(data) if line_end == -1 else line_end)
            if line_length > line_limit:
                return RefusedError.target_too_long(self.limits)
        window = self._tail + data
        end = _END_OF_HEAD.search(window)
        if _FOLDED_LINE.search(window, 0, len(window) if end is None else end.start() + 1) is not None:
            return RefusedError.malformed()
        if end is None:
            self.bytes_seen += len(data)
        else:
            self.bytes_seen += max(0, end.end() - len(self._tail))
            self.complete = True
        self._tail = window[-3:]
        if self.bytes_seen > self.limits.max_head_bytes:
            return RefusedError.headers_too_large(self.limits)
        return None


def is_health_probe(path: str) -> bool:
    return path.startswith(HEALTH_PATH_PREFIX)


def describe_client(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown client"
