"""A client span for each SQL statement an app runs while a traced request is served: the
statement's kind and table, never its text nor its parameters. An app on a SQLAlchemy engine
hands the engine over (``trace_statements``); an app that runs statements on its driver
itself wraps each in ``statement_span``, described once per statement (``StatementKind``)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, StatusCode

from gateway.tracing.context import current_trace

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span
    from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.sql.base import Executable

    from gateway.tracing.context import RequestTrace

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
        compiled = getattr(context, "compiled", None)
        kind = StatementKind(operation, _table_of(getattr(compiled, "statement", None)), system)
        connection.info[_SPAN_KEY] = _start(trace, kind)

    def end_span(connection: Connection, *_statement: Any) -> None:
        span = connection.info.pop(_SPAN_KEY, None)
        if span is not None:
            span.end()

    def fail_span(exception_context: ExceptionContext) -> None:
        connection = exception_context.connection
        span = connection.info.pop(_SPAN_KEY, None) if connection is not None else None
        if span is not None:
            _record_failure(span, exception_context.original_exception)
            span.end()

    event.listen(sync_engine, "before_cursor_execute", begin_span)
    event.listen(sync_engine, "after_cursor_execute", end_span)
    event.listen(sync_engine, "handle_error", fail_span)


@dataclass(frozen=True, slots=True)
class StatementKind:
    """What a statement's span says of it: its operation, its table and the database system."""

    operation: str
    table: str | None
    system: str

    @classmethod
    def of(cls, statement: Executable, system: str) -> StatementKind:
        """``statement`` (SQLAlchemy Core) described once, e.g. when it is compiled."""
        operation = type(statement).__name__.upper() if statement.is_dml or statement.is_select else "SQL"
        return cls(operation, _table_of(statement), system)


def statement_span(kind: StatementKind) -> AbstractContextManager[object]:
    """A client span around one statement while a traced request is served; else nothing
    but a check of the request's context."""
    trace = current_trace()
    if trace is None:
        return _NO_SPAN
    return _spanning(trace, kind)


_NO_SPAN = nullcontext()


@contextmanager
def _spanning(trace: RequestTrace, kind: StatementKind) -> Iterator[None]:
    span = _start(trace, kind)
    try:
        yield
    except BaseException as error:
        _record_failure(span, error)
        raise
    finally:
        span.end()


def _record_failure(span: Span, error: BaseException) -> None:
    # The type only: a driver's message may quote the parameters.
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(StatusCode.ERROR)


def _start(trace: RequestTrace, kind: StatementKind) -> Span:
    attributes = {"db.system.name": kind.system, "db.operation.name": kind.operation}
    if kind.table is not None:
        attributes["db.collection.name"] = kind.table
    name = f"{kind.operation} {kind.table}" if kind.table is not None else kind.operation
    return trace.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def _table_of(statement: object) -> str | None:
    """The table a statement writes, or the first it reads from; None for text."""
    from sqlalchemy.sql import Delete, Insert, Select, Update  # Loaded by then: a lookup.

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
