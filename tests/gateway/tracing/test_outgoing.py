"""Outgoing calls carry the trace: a client span and its W3C trace context on the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from opentelemetry.trace import SpanKind, StatusCode

from gateway.tracing.outgoing import client_span, command_span, record_response

if TYPE_CHECKING:
    from tests.gateway.tracing.conftest import Recorded

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_call_gets_a_client_span_whose_context_the_request_carries(recorded: Recorded) -> None:
    tracer = recorded.provider().get_tracer("test")
    request = httpx.Request("GET", "https://user:pw@peer.test:8443/v2/items/7?token=secret-value")
    with tracer.start_as_current_span("server") as server, client_span(tracer, request) as span:
        record_response(span, 404)
    (client, _server) = recorded.spans()
    assert (client.name, client.kind) == ("GET", SpanKind.CLIENT)
    assert client.parent is not None
    assert client.parent.span_id == server.get_span_context().span_id
    trace_id, span_id = format(client.context.trace_id, "032x"), format(client.context.span_id, "016x")
    assert request.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    assert client.attributes is not None
    assert client.attributes["url.full"] == "https://peer.test:8443/v2/items/7"
    assert (client.attributes["server.address"], client.attributes["server.port"]) == ("peer.test", 8443)
    assert client.status.status_code is StatusCode.ERROR  # A 4xx fails a client span.


def test_gateway_call_passes_a_parents_trace_context_on_with_tracing_off() -> None:
    request = httpx.Request("GET", "https://peer.test/v2/items")
    with command_span(request, {"TRACEPARENT": TRACEPARENT, "TRACESTATE": "vendor=1"}) as span:
        assert span is None
    assert (request.headers["traceparent"], request.headers["tracestate"]) == (TRACEPARENT, "vendor=1")
    untouched = httpx.Request("GET", "https://peer.test/v2/items")
    with command_span(untouched, {}):
        pass
    assert "traceparent" not in untouched.headers
