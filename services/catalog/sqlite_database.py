"""The catalog on SQLite: reads in the event loop, writes on one connection in a thread of its own.

A read is one statement on a file in WAL mode, where readers never wait for the writer:
running it in the loop costs microseconds, against a hop to another thread and back that
waits for the GIL; the read then gives the loop one turn, as an await on a driver would. It cannot wait for a lock either (its busy timeout is short, for the
rare reader that meets a checkpoint's recovery), and a progress handler interrupts a
statement that runs past the call's deadline, so the loop is never held up long.

Writes wait for the file's write lock (``BEGIN IMMEDIATE`` waits ``busy_timeout`` for it,
rather than failing when a read transaction later tries to upgrade), so they run in a
thread: one connection, one transaction at a time. Python's sqlite3 module would begin
transactions lazily and lose concurrent updates (https://github.com/python/cpython/issues/54133);
with ``isolation_level=None`` it begins none itself, and the writer says ``BEGIN IMMEDIATE``.
SQLite's busy handler is not fair: under many concurrent writers some sleep past the timeout
while others keep winning, so each process lets one writer at a time contend for the lock,
and the others queue for it in order (an ``asyncio.Lock`` is FIFO).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from gateway.api import statement_span, use_write_ahead_log
from services.catalog.database import (
    CompiledStatement,
    ConstraintViolationError,
    Mode,
    StatementCompiler,
    TransactionSession,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from sqlalchemy.engine import URL
    from sqlalchemy.sql.expression import Executable

# How long a read in the loop may wait for a lock (WAL readers wait only on a recovery).
_READER_BUSY_TIMEOUT = 0.05
# The progress handler runs every this many SQLite virtual machine instructions.
_PROGRESS_INSTRUCTIONS = 1000
# How SQLAlchemy's SQLite dialect stores a datetime (as text, in UTC): the files it wrote
# and the ones written here compare and sort alike.
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class SqliteDatabase:
    dialect_name = "sqlite"

    def __init__(self, url: URL, *, busy_timeout: float, timeout: float) -> None:
        self._path = url.database or ""
        self._busy_timeout = busy_timeout
        self._timeout = timeout
        self.compile = StatementCompiler(SQLiteDialect_pysqlite(paramstyle="qmark"), _encoded).prepare
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-sqlite-writer")
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._one_writer = asyncio.Lock()
        # When the statement running on a connection must give up (monotonic seconds).
        self._deadlines: dict[sqlite3.Connection, float] = {}

    @property
    def bounds_reads_itself(self) -> bool:
        # A read in the loop cannot be interrupted by a timer anyway; the progress handler
        # stops it at the deadline. Opening the reader (in the thread) is another matter.
        return self._reader is not None

    async def read(self, statement: Executable, parameters: Mapping[str, Any]) -> list[Sequence[Any]]:
        compiled, arguments = self.compile(statement, parameters)
        rows: list[Sequence[Any]] = await self.run(
            self._reader or await self._open_reader(), compiled, arguments, "fetch"
        )
        # A read in the loop never suspends, so a loop of reads (an export) would starve
        # every other task: each read gives the loop one turn, as an await on a driver would.
        await asyncio.sleep(0)
        return rows

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[TransactionSession]:
        async with self._one_writer:
            writer = self._writer or await self._open_writer()
            await self._in_thread(_begin_immediate, writer)
            try:
                yield TransactionSession(self, writer)
            except BaseException:
                # Shielded: a cancelled call still rolls back before the next writer begins.
                await asyncio.shield(self._in_thread(_roll_back, writer))
                raise
            await self._in_thread(writer.commit)

    async def run(
        self,
        connection: sqlite3.Connection,
        statement: CompiledStatement,
        arguments: Sequence[Any],
        mode: Mode,
    ) -> Any:
        """Run one statement, in its tracing span: the one place this store meets sqlite3."""
        self._deadlines[connection] = time.monotonic() + self._timeout
        with statement_span(statement.kind):
            if connection is self._reader:
                return _execute(connection, statement.sql, arguments, mode)
            return await self._in_thread(_execute, connection, statement.sql, arguments, mode)

    def datetime_of(self, value: Any) -> datetime:
        # The offset appended, not set with ``replace``: one parse, six times cheaper.
        return datetime.fromisoformat(value + "+00:00")

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                await self._in_thread(connection.close)
        self._reader = self._writer = None
        self._thread.shutdown(wait=False)

    async def _open_reader(self) -> sqlite3.Connection:
        # Opened in the thread: switching a new file to WAL may wait for other processes.
        reader = await self._in_thread(self._connect, min(self._busy_timeout, _READER_BUSY_TIMEOUT))
        if self._reader is None:
            self._reader = reader
        else:  # Another call opened one meanwhile.
            await self._in_thread(reader.close)
        return self._reader

    async def _open_writer(self) -> sqlite3.Connection:
        self._writer = await self._in_thread(self._connect, self._busy_timeout)
        return self._writer

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: the reader is opened here and used in the loop's thread.
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000):d}")
            use_write_ahead_log(connection.cursor(), timeout=self._busy_timeout)
            # Safe in WAL mode: a power loss may drop the last commits but never corrupts.
            connection.execute("PRAGMA synchronous = NORMAL")
            # Off by default in SQLite; item_tags relies on ON DELETE CASCADE.
            connection.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            connection.close()
            raise
        connection.set_progress_handler(
            functools.partial(self._past_deadline, connection), _PROGRESS_INSTRUCTIONS
        )
        return connection

    def _past_deadline(self, connection: sqlite3.Connection) -> bool:
        # True interrupts the statement (SQLITE_INTERRUPT), which the store reports as unavailability.
        return time.monotonic() > self._deadlines.get(connection, 0.0)

    async def _in_thread(self, function: Callable[..., Any], *arguments: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *arguments)


def _execute(connection: sqlite3.Connection, sql: str, arguments: Sequence[Any], mode: Mode) -> Any:
    try:
        if mode == "execute_many":
            connection.executemany(sql, arguments)
            return None
        cursor = connection.execute(sql, arguments)
        return cursor.fetchall() if mode == "fetch" else cursor.rowcount
    except sqlite3.IntegrityError as error:
        raise ConstraintViolationError(str(error)) from error


def _begin_immediate(writer: sqlite3.Connection) -> None:
    # A transaction a cancelled call could not end must not hold the lock into the next one.
    if writer.in_transaction:
        writer.rollback()
    writer.execute("BEGIN IMMEDIATE")


def _roll_back(writer: sqlite3.Connection) -> None:
    if writer.in_transaction:
        writer.rollback()


def _encoded(value: Any) -> Any:
    """A parameter as SQLite stores it: datetimes as SQLAlchemy's text, lists of ids as JSON."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_DATETIME_FORMAT)
    if isinstance(value, list | tuple | frozenset):
        return json.dumps(sorted(value))
    return value
