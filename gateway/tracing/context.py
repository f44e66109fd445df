"""The trace of the request being served, visible to its log lines, clients and statements."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


@dataclass(frozen=True, slots=True)
class RequestTrace:
    """The request's tracer (for child spans) and its server span's ids, as log lines write them."""

    tracer: Tracer
    trace_id: str
    span_id: str


_request_trace: ContextVar[RequestTrace | None] = ContextVar("gateway_request_trace", default=None)


def current_trace() -> RequestTrace | None:
    return _request_trace.get()


def bind_trace(trace: RequestTrace) -> Token[RequestTrace | None]:
    return _request_trace.set(trace)


def unbind_trace(token: Token[RequestTrace | None]) -> None:
    # The request's own task ends soon anyway; an in-process client (httpx's ASGI
    # transport) runs the app in its caller's task, which must not keep the trace.
    _request_trace.reset(token)
