"""The one server span of a request: opened by the edge before the app runs, named and
attributed once the app has routed it (the route template through the mount)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.routing import route_path_of
from gateway.tls.identity import identity_of
from gateway.tracing.context import RequestTrace, bind_trace, unbind_trace
from gateway.tracing.provider import shut_down_off_loop, start_otlp_provider

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer
    from starlette.types import Scope

    from gateway.tracing.configuration import TracingConfiguration

TRACER_NAME = "gateway"
# What the gateway adds to the HTTP semantic conventions.
API_VERSION_ATTRIBUTE = "gateway.api_version"
CALLER_ATTRIBUTE = "gateway.caller.spiffe_id"
REQUEST_ID_ATTRIBUTE = "gateway.request_id"
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
_W3C = TraceContextTextMapPropagator()
_TRACE_CONTEXT_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


class ServerTracing:
    """The edge's tracer, started by the lifespan in each worker (after the fork) and
    flushed when it ends: on a graceful stop, and on HUP, which stops old workers so."""

    def __init__(
        self,
        configuration: TracingConfiguration,
        start_provider: Callable[[], TracerProvider] = start_otlp_provider,
    ) -> None:
        self.excluded_paths = configuration.excluded_paths
        self._start_provider = start_provider
        self.tracer: Tracer | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        provider = self._start_provider()
        self.tracer = provider.get_tracer(TRACER_NAME)
        try:
            yield
        finally:
            self.tracer = None
            await shut_down_off_loop(provider)

    def begin(self, scope: Scope, request_id: str) -> ServerSpan | None:
        """The request's span, current until ``finish``; None for an excluded path."""
        tracer = self.tracer
        if tracer is None:
            return None
        path = route_path_of(scope["path"], scope.get("root_path", ""))
        if self.excluded_paths is not None and self.excluded_paths.search(path):
            return None
        return ServerSpan(tracer, scope, request_id)


class ServerSpan:
    __slots__ = ("_context_token", "_trace_token", "method", "span", "span_id", "trace_id")

    def __init__(self, tracer: Tracer, scope: Scope, request_id: str) -> None:
        parent = _W3C.extract(_trace_context_headers(scope))
        method = scope["method"]
        self.method = method if method in _KNOWN_METHODS else "HTTP"
        self.span = span = tracer.start_span(
            self.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_request_attributes(scope, method, request_id),
        )
        span_context = span.get_span_context()
        self.trace_id = format(span_context.trace_id, "032x")
        self.span_id = format(span_context.span_id, "016x")
        # Current for the app: its clients and statements make child spans of it.
        self._context_token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._trace_token = bind_trace(RequestTrace(tracer, self.trace_id, self.span_id))

    def finish(
        self,
        scope: Scope,
        *,
        status: int,
        route: str | None,
        version: str | None,
        error: BaseException | None,
    ) -> None:
        span = self.span
        if span.is_recording():
            # One call: the SDK takes the span's lock for each.
            attributes: dict[str, str | int] = {"http.response.status_code": status}
            if route is not None:
                span.update_name(f"{self.method} {route}")
                attributes["http.route"] = route
            if version is not None:
                attributes[API_VERSION_ATTRIBUTE] = version
            caller = identity_of(scope)
            if caller is not None:
                attributes[CALLER_ATTRIBUTE] = caller.spiffe_id
            if error is not None or status >= 500:
                attributes["error.type"] = type(error).__qualname__ if error is not None else str(status)
                span.set_status(StatusCode.ERROR)
            span.set_attributes(attributes)
        span.end()
        unbind_trace(self._trace_token)
        otel_context.detach(self._context_token)


def _trace_context_headers(scope: Scope) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = _TRACE_CONTEXT_HEADERS.get(name)
        if key is not None:
            # Repeated tracestate lines form one list (W3C Trace Context 3.3.1.1).
            carrier[key] = (
                f"{carrier[key]},{value.decode('latin-1')}" if key in carrier else value.decode("latin-1")
            )
    return carrier


def _request_attributes(scope: Scope, method: str, request_id: str) -> dict[str, str | int]:
    """What is known before the app runs; never the query string nor a header's value."""
    attributes: dict[str, str | int] = {
        "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        REQUEST_ID_ATTRIBUTE: request_id,
    }
    if method not in _KNOWN_METHODS:
        attributes["http.request.method_original"] = method
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    return attributes
