"""Statement spans from an app's engine: kind and table, never the statement's values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import DBAPIError

from gateway.api import StatementKind, statement_span, trace_statements
from gateway.tracing.context import RequestTrace, bind_trace, unbind_trace
from services.catalog.engine import create_catalog_engine

if TYPE_CHECKING:
    from tests.gateway.tracing.conftest import Recorded

pytestmark = pytest.mark.anyio
PARAMETER_VALUE = "marker-of-a-parameter-value"
notes = Table(
    "tracing_notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String(100))
)


async def test_statements_in_a_traced_request_get_spans_without_their_values(
    empty_database_url: str, recorded: Recorded
) -> None:
    engine = create_catalog_engine(empty_database_url, busy_timeout=1.0)
    trace_statements(engine)
    tracer = recorded.provider().get_tracer("test")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(notes.create)
        assert recorded.spans() == []  # Outside a request: nothing.
        token = bind_trace(RequestTrace(tracer, "0" * 32, "0" * 16))
        try:
            async with engine.connect() as connection:
                await connection.execute(
                    insert(notes), [{"id": 1, "body": PARAMETER_VALUE}, {"id": 2, "body": PARAMETER_VALUE}]
                )
                await connection.execute(select(notes.c.body).where(notes.c.body == PARAMETER_VALUE))
                with pytest.raises(DBAPIError):
                    await connection.execute(
                        text("SELECT nothing FROM tracing_notes WHERE body = :body"),
                        {"body": PARAMETER_VALUE},
                    )
                await connection.rollback()
        finally:
            unbind_trace(token)
    finally:
        await engine.dispose()
    spans = recorded.spans()
    assert [span.name for span in spans] == ["INSERT tracing_notes", "SELECT tracing_notes", "SELECT"]
    assert all(span.kind is SpanKind.CLIENT for span in spans)
    assert spans[0].attributes is not None
    assert spans[0].attributes["db.system.name"] == engine.dialect.name
    assert (spans[0].attributes["db.operation.name"], spans[0].attributes["db.collection.name"]) == (
        "INSERT",
        "tracing_notes",
    )
    assert spans[2].status.status_code is StatusCode.ERROR
    assert all(PARAMETER_VALUE not in span.to_json() for span in spans)


def test_a_statement_run_on_the_driver_gets_its_span_from_its_description(recorded: Recorded) -> None:
    tracer = recorded.provider().get_tracer("test")
    reading = StatementKind.of(select(notes.c.body).where(notes.c.body == PARAMETER_VALUE), "sqlite")
    writing = StatementKind.of(insert(notes), "sqlite")
    with statement_span(reading):
        pass
    assert recorded.spans() == []  # Outside a request: nothing.
    token = bind_trace(RequestTrace(tracer, "0" * 32, "0" * 16))
    try:
        with statement_span(reading):
            pass
        with pytest.raises(ValueError, match=PARAMETER_VALUE), statement_span(writing):
            raise ValueError(PARAMETER_VALUE)
    finally:
        unbind_trace(token)
    read, failed = recorded.spans()
    assert (read.name, failed.name) == ("SELECT tracing_notes", "INSERT tracing_notes")
    assert read.attributes == {
        "db.system.name": "sqlite",
        "db.operation.name": "SELECT",
        "db.collection.name": "tracing_notes",
    }
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "ValueError"
    assert PARAMETER_VALUE not in repr([span.to_json() for span in recorded.spans()])
