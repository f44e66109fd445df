"""Calls to other services carry the caller's trace: a client span, and its W3C
``traceparent`` (and ``tracestate``) on the request, so the callee's span is its child."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.tracing.configuration import tracing_configuration
from gateway.tracing.provider import shut_down, start_otlp_provider

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import httpx
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

_W3C = TraceContextTextMapPropagator()
COMMAND_TRACER_NAME = "gateway.call"
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)


@contextmanager
def client_span(tracer: Tracer, request: httpx.Request, parent: Context | None = None) -> Iterator[Span]:
    """A client span around ``request`` (child of the current span, or of ``parent``), whose
    trace context the request then carries; it ends, failed or not, with the block."""
    method = request.method if request.method in _KNOWN_METHODS else "HTTP"
    url = request.url
    attributes: dict[str, str | int] = {
        "http.request.method": method if method != "HTTP" else "_OTHER",
        "server.address": url.host,
        # Never the query string nor credentials: scheme, authority and path only.
        "url.full": f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}",
    }
    if url.port is not None:
        attributes["server.port"] = url.port
    span = tracer.start_span(method, context=parent, kind=SpanKind.CLIENT, attributes=attributes)
    _W3C.inject(request.headers, trace.set_span_in_context(span, parent))
    try:
        yield span
    except BaseException as error:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(StatusCode.ERROR)
        raise
    finally:
        span.end()


def record_response(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 400:  # For a client span a 4xx is a failure too (HTTP semantic conventions).
        span.set_attribute("error.type", str(status))
        span.set_status(StatusCode.ERROR)


@contextmanager
def command_span(request: httpx.Request, environment: Mapping[str, str]) -> Iterator[Span | None]:
    """For a one-off command (``gateway call``): the trace context a parent process hands
    down in ``TRACEPARENT`` and ``TRACESTATE`` is continued, by a client span exported as the
    OTEL_* variables say, or, with tracing off, passed on to the request unchanged."""
    carrier = {
        header: environment[variable]
        for header, variable in (("traceparent", "TRACEPARENT"), ("tracestate", "TRACESTATE"))
        if environment.get(variable)
    }
    if tracing_configuration(environment) is None:
        request.headers.update(carrier)
        yield None
        return
    provider = start_otlp_provider()
    try:
        with client_span(provider.get_tracer(COMMAND_TRACER_NAME), request, _W3C.extract(carrier)) as span:
            yield span
    finally:
        shut_down(provider)
