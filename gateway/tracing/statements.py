"""A client span for each SQL statement an app's engine runs while a traced request is
served: the statement's kind and table, never its text nor its parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, StatusCode

from gateway.tracing.context import current_trace

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext
    from sqlalchemy.ext.asyncio import AsyncEngine

# Where a statement's span waits, in its connection's info, for the statement to end.
_SPAN_KEY = "gateway.tracing.span"


def trace_statements(engine: AsyncEngine | Engine) -> None:
    """Trace ``engine``'s statements (and those of its ``execution_options`` views); outside a
    traced request each costs a check of the request's context."""
    # Here, not at the top: gateway.api offers this to every app, and only apps with an
    # engine should pay for importing SQLAlchemy.
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import AsyncEngine

    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    system = sync_engine.dialect.name

    def begin_span(
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        trace = current_trace()
        if trace is None:
            return
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        table = _table_of(context)
        attributes = {"db.system.name": system, "db.operation.name": operation}
        if table is not None:
            attributes["db.collection.name"] = table
        name = f"{operation} {table}" if table is not None else operation
        connection.info[_SPAN_KEY] = trace.tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes
        )

    def end_span(connection: Connection, *_statement: Any) -> None:
        span = connection.info.pop(_SPAN_KEY, None)
        if span is not None:
            span.end()

    def fail_span(exception_context: ExceptionContext) -> None:
        connection = exception_context.connection
        span = connection.info.pop(_SPAN_KEY, None) if connection is not None else None
        if span is not None:
            # The type only: a driver's message may quote the parameters.
            span.set_attribute("error.type", type(exception_context.original_exception).__qualname__)
            span.set_status(StatusCode.ERROR)
            span.end()

    event.listen(sync_engine, "before_cursor_execute", begin_span)
    event.listen(sync_engine, "after_cursor_execute", end_span)
    event.listen(sync_engine, "handle_error", fail_span)


def _table_of(context: ExecutionContext | None) -> str | None:
    """The table a compiled statement writes, or the first it reads from; None for text."""
    from sqlalchemy.sql import Delete, Insert, Select, Update  # Loaded by then: a lookup.

    compiled = getattr(context, "compiled", None)
    statement = getattr(compiled, "statement", None)
    if isinstance(statement, Insert | Update | Delete):
        sources: Sequence[Any] = [statement.table]
    elif isinstance(statement, Select):
        sources = statement.get_final_froms()
    else:
        return None
    for source in sources:
        name = getattr(source, "name", None)  # A join has no name of its own.
        if isinstance(name, str):
            return name
    return None
