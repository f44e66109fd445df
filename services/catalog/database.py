"""The store's one narrow way to the database: statements compiled once, run on the driver.

SQLAlchemy Core describes the tables and builds the statements (``statements.py``); each is
compiled once per dialect and parameter set, and from then on runs directly on the driver
(sqlite3, asyncpg), without SQLAlchemy's async layer, result objects or type processing,
which cost more than the statement itself. A thin adapter per driver (``sqlite_database.py``,
``postgresql_database.py``) does what differs: how a connection is had, how a transaction
begins, and how the few Python types the catalog stores go in and come out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy.engine import make_url

from gateway.api import StatementKind

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime

    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.expression import Executable


# Seconds a database call may take, by default (GATEWAY_DATABASE_TIMEOUT).
DEFAULT_TIMEOUT = 5.0
# Connections a PostgreSQL pool keeps per process, and how many more it may open under load
# (see connections.py for what that adds up to across workers and replicas).
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 5
# The URL query parameter that selects a PostgreSQL schema (the connection's search_path).
SEARCH_PATH_PARAMETER = "search_path"

# What ``Database.run`` returns: the rows, how many rows changed, or nothing (one
# statement run once per parameter list).
Mode = Literal["fetch", "execute", "execute_many"]


class ConstraintViolationError(Exception):
    """A statement broke one of the schema's constraints: a bug, or two writers meeting on a key."""


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """A statement's SQL for one driver, and the names of its parameters in their order."""

    sql: str
    parameter_names: tuple[str, ...]
    # Values the statement itself binds (a literal in a WHERE clause), by parameter name.
    constants: Mapping[str, Any]
    # What its tracing span says of it (``gateway.api.statement_span``).
    kind: StatementKind

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``parameters``, by name."""
        if self.constants:
            parameters = {**self.constants, **parameters}
        return [parameters[name] for name in self.parameter_names]


class StatementCompiler:
    """Compiles each statement once per set of parameter names, for one dialect."""

    def __init__(self, dialect: Dialect, encode: Callable[[Any], Any]) -> None:
        self._dialect = dialect
        # A parameter's value as the driver takes it (a datetime as SQLite's text...).
        self._encode = encode
        self._compiled: dict[tuple[Executable, tuple[str, ...]], CompiledStatement] = {}

    def prepare(
        self, statement: Executable, parameters: Mapping[str, Any]
    ) -> tuple[CompiledStatement, list[Any]]:
        """``statement`` compiled for ``parameters``' names, and their values in its order."""
        compiled = self.compile(statement, tuple(parameters))
        encode = self._encode
        return compiled, [encode(value) for value in compiled.arguments(parameters)]

    def compile(self, statement: Executable, parameter_names: tuple[str, ...]) -> CompiledStatement:
        key = (statement, parameter_names)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(statement, parameter_names)
        return compiled

    def _compile(self, statement: Executable, parameter_names: tuple[str, ...]) -> CompiledStatement:
        # column_keys: the columns an INSERT or UPDATE sets are the parameters' names, as when
        # SQLAlchemy runs a statement without values of its own.
        compiled = statement.compile(dialect=self._dialect, column_keys=list(parameter_names))  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup or ())
        constants = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        kind = StatementKind.of(statement, self._dialect.name)
        return CompiledStatement(compiled.string, names, constants, kind)


class Session(Protocol):
    """One connection, outside a transaction (each statement on its own) or inside one."""

    async def fetch(self, statement: Executable, parameters: Mapping[str, Any]) -> list[Sequence[Any]]:
        """The rows ``statement`` returns."""
        ...

    async def execute(self, statement: Executable, parameters: Mapping[str, Any]) -> int:
        """Run ``statement``; how many rows it changed."""
        ...

    async def execute_many(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run ``statement`` once per parameter set in ``rows`` (all with the same names)."""
        ...


class Driver(Protocol):
    """What an adapter gives ``TransactionSession``: its compiler and its one ``run``."""

    def compile(
        self, statement: Executable, parameters: Mapping[str, Any]
    ) -> tuple[CompiledStatement, list[Any]]: ...

    async def run(
        self, connection: Any, statement: CompiledStatement, arguments: Sequence[Any], mode: Mode
    ) -> Any: ...


class TransactionSession:
    """Statements in a write transaction on one connection, each through the adapter's ``run``."""

    __slots__ = ("_connection", "_driver")

    def __init__(self, driver: Driver, connection: Any) -> None:
        self._driver = driver
        self._connection = connection

    async def fetch(self, statement: Executable, parameters: Mapping[str, Any]) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = await self._run(statement, parameters, "fetch")
        return rows

    async def execute(self, statement: Executable, parameters: Mapping[str, Any]) -> int:
        rowcount: int = await self._run(statement, parameters, "execute")
        return rowcount

    async def execute_many(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        driver = self._driver
        compiled, _ = driver.compile(statement, rows[0])
        arguments = [driver.compile(statement, row)[1] for row in rows]
        await driver.run(self._connection, compiled, arguments, "execute_many")

    async def _run(self, statement: Executable, parameters: Mapping[str, Any], mode: Mode) -> Any:
        compiled, arguments = self._driver.compile(statement, parameters)
        return await self._driver.run(self._connection, compiled, arguments, mode)


class Database(Protocol):
    """A catalog database on its driver: sessions to read and to write, and its types."""

    dialect_name: str

    # True while a read neither waits nor runs past its deadline without a timer of the
    # store's: the driver stops it itself (SQLite in the loop, once its reader is open).
    @property
    def bounds_reads_itself(self) -> bool: ...

    async def read(self, statement: Executable, parameters: Mapping[str, Any]) -> list[Sequence[Any]]:
        """The rows of one statement run on its own: a read is one statement, which sees one
        snapshot of the database without a transaction."""
        ...

    def writing(self) -> AbstractAsyncContextManager[Session]:
        """A session in a write transaction, committed when the block ends without an error."""
        ...

    def datetime_of(self, value: Any) -> datetime:
        """A timestamp column's value as an aware UTC datetime."""
        ...

    async def run(
        self, connection: Any, statement: CompiledStatement, arguments: Sequence[Any], mode: Mode
    ) -> Any:
        """Run one statement on ``connection``, in its tracing span: the one place where the
        store meets the driver.

        ``mode`` says what comes back: "fetch" the rows, "execute" how many rows changed,
        "execute_many" (``arguments`` a list of parameter lists) nothing.
        """
        ...

    async def close(self) -> None: ...


def open_database(
    database_url: str,
    *,
    busy_timeout: float,
    timeout: float = DEFAULT_TIMEOUT,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
) -> Database:
    """The database at ``database_url`` (connections are made when first needed)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        from services.catalog.sqlite_database import SqliteDatabase

        return SqliteDatabase(url, busy_timeout=min(busy_timeout, timeout), timeout=timeout)
    from services.catalog.postgresql_database import PostgresqlDatabase

    return PostgresqlDatabase(url, timeout=timeout, max_connections=pool_size + max_overflow)
