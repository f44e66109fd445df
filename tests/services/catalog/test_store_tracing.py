"""The catalog's statements, traced under the request's span: kind and table, never values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry.trace import SpanKind

from gateway.tracing.server import ServerTracing
from tests.conftest import catalog_versions, gateway_settings, open_client
from tests.gateway.tracing.conftest import DEFAULT_CONFIGURATION, Recorded

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

pytestmark = pytest.mark.anyio
MARKER = "Teapot-7f3a9c"
MISSING_ITEM_ID = 987654


async def test_a_requests_statements_are_children_of_its_span_without_their_values(database_url: str) -> None:
    recorded = Recorded()
    settings = gateway_settings(database_url=database_url, versions=catalog_versions(), internal_app=None)
    async for client in open_client(
        settings, tracing=ServerTracing(DEFAULT_CONFIGURATION, recorded.provider)
    ):
        created = await client.post("/v2/items", json={"name": MARKER, "price": {"amount": "1.50"}})
        missing = await client.get(f"/v2/items/{MISSING_ITEM_ID}")
    assert (created.status_code, missing.status_code) == (201, 404)
    servers = {span.name: span for span in recorded.server_spans()}
    statements = [span for span in recorded.spans() if span.kind is SpanKind.CLIENT]
    create, read = servers["POST /v2/items"], servers["GET /v2/items/{item_id}"]
    assert "INSERT items" in _names_under(create, statements)
    assert _names_under(read, statements) == ["SELECT items"]
    assert not [
        span.name for span in statements if MARKER in span.to_json() or str(MISSING_ITEM_ID) in span.to_json()
    ]


def _names_under(parent: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    return [
        span.name
        for span in spans
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]
