"""The edge's server span: one per request, named by the route template through the mount."""

from __future__ import annotations

import json
import logging
import logging.config
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gateway.logs import logging_config
from gateway.tracing.configuration import TracingConfiguration
from gateway.tracing.server import (
    API_VERSION_ATTRIBUTE,
    CALLER_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    ServerTracing,
)
from tests.conftest import open_client
from tests.gateway.test_logs import _reset_logging
from tests.identities import spiffe_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.settings import Settings
    from tests.gateway.tracing.conftest import Recorded, TracedClient

pytestmark = pytest.mark.anyio
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


async def test_a_request_has_one_server_span_named_by_its_route_template(
    traced_client: TracedClient, recorded: Recorded
) -> None:
    async with traced_client(caller="billing") as client:
        response = await client.get("/v3/greetings?token=secret-value", headers={"traceparent": TRACEPARENT})
        hello = await client.get("/v3/hello")
    assert (response.status_code, hello.status_code) == (405, 200)
    first, second = recorded.server_spans()
    assert len(recorded.spans()) == 2  # No second span from the mounted FastAPI app.
    assert second.name == "GET /v3/hello"
    attributes = dict(second.attributes or {})
    assert attributes["http.route"] == "/v3/hello"
    assert attributes[API_VERSION_ATTRIBUTE] == "v3"
    assert attributes[CALLER_ATTRIBUTE] == spiffe_id("billing")
    assert attributes["http.response.status_code"] == 200
    assert attributes[REQUEST_ID_ATTRIBUTE] == hello.headers["x-request-id"]
    assert second.status.status_code is StatusCode.UNSET
    # The incoming trace context is the parent; the query string is never recorded.
    assert format(first.context.trace_id, "032x") == TRACE_ID
    assert first.parent is not None
    assert format(first.parent.span_id, "016x") == PARENT_SPAN_ID
    assert first.parent.is_remote
    assert not any(
        "secret-value" in str(value)
        for span in recorded.spans()
        for value in (span.attributes or {}).values()
    )


async def test_the_template_is_the_versions_own_through_the_mount_and_a_versionless_path(
    traced_client: TracedClient, recorded: Recorded
) -> None:
    async with traced_client() as client:
        await client.post("/v3/greetings", json={"message": "hi"})
        await client.get("/hello")  # The current version serves a path without one.
    names = [span.name for span in recorded.server_spans()]
    assert names == ["POST /v3/greetings", "GET /v3/hello"]
    versionless = recorded.server_spans()[1].attributes
    assert versionless is not None
    assert versionless["url.path"] == "/hello"


async def test_a_failure_marks_the_span_with_its_type(
    traced_client: TracedClient, recorded: Recorded
) -> None:
    async with traced_client() as client:
        response = await client.get("/v3/boom")
    assert response.status_code == 500
    (span,) = recorded.server_spans()
    assert span.name == "GET /v3/boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    # The message may hold data; only the type is recorded.
    assert "secret internal detail" not in str(span.to_json())


async def test_health_and_metrics_are_not_traced_unless_the_exclusions_say_so(
    traced_client: TracedClient, recorded: Recorded
) -> None:
    async with traced_client() as client:
        for path in ("/health", "/health/live", "/health/ready", "/metrics"):
            assert (await client.get(path)).status_code == 200
    assert recorded.spans() == []
    async with traced_client(configuration=TracingConfiguration(None)) as client:
        await client.get("/health/live")
    assert [span.name for span in recorded.server_spans()] == ["GET /health/live"]


async def test_every_log_line_of_a_request_carries_its_trace(
    traced_client: TracedClient, recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = await _logged_lines(capsys, lambda: traced_client())
    (span,) = recorded.server_spans()
    ids = {"trace_id": format(span.context.trace_id, "032x"), "span_id": format(span.context.span_id, "016x")}
    assert span.attributes is not None
    # In process the client's own line (httpx's) follows in the same task, after the request.
    of_the_request = [
        line
        for line in lines
        if line["request_id"] == span.attributes[REQUEST_ID_ATTRIBUTE] and line["logger"] != "httpx"
    ]
    assert {line["logger"] for line in of_the_request} >= {"gateway.edge", "gateway.access"}
    assert [{name: line.get(name) for name in ids} for line in of_the_request] == [ids] * len(of_the_request)
    # The fast access line ends with them, as a record's line would.
    assert list(of_the_request[-1])[-2:] == ["trace_id", "span_id"]


async def test_with_tracing_off_no_line_has_trace_fields(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = await _logged_lines(capsys, lambda: asynccontextmanager(open_client)(make_settings()))
    assert {line["logger"] for line in lines} >= {"gateway.edge", "gateway.access"}
    assert not any("trace_id" in line or "span_id" in line for line in lines)


async def _logged_lines(
    capsys: pytest.CaptureFixture[str], opened: Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]
) -> list[dict[str, Any]]:
    """The JSON lines of one failing request (the edge's error line and the access line)."""
    logging.config.dictConfig(logging_config("info"))
    try:
        async with opened() as client:
            capsys.readouterr()
            await client.get("/v3/boom")
            logging.getLogger("gateway.access").handlers[0].flush()
            output = capsys.readouterr().out
    finally:
        _reset_logging()
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


async def test_the_lifespan_flushes_the_batches_when_it_ends(
    make_settings: Callable[..., Settings],
) -> None:
    exporter = InMemorySpanExporter()

    def batching() -> TracerProvider:
        # A batch due only in an hour: the spans reach the exporter at the shutdown or not at all.
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
        return provider

    tracing = ServerTracing(TracingConfiguration(None), batching)
    async for client in open_client(make_settings(), tracing=tracing):
        await client.get("/v3/hello")
        assert exporter.get_finished_spans() == ()
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /v3/hello"]
    assert tracing.tracer is None
