"""When the database cannot answer: which errors mean that, and a bound on every wait.

A request that meets an unreachable, locked or slow database should be told to come back
later (503), not see a 500, and no worker should wait on it indefinitely. The store runs
every call inside ``bounded``, which turns those errors into ``CatalogUnavailableError``;
a bug (a constraint violated, bad SQL) keeps its own type and stays a 500.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

# SQLite reports syntax errors and missing tables as OperationalError too; only these
# primary result codes (and their extended forms, SQLITE_BUSY_SNAPSHOT...) mean "not now".
# SQLITE_INTERRUPT: the store's progress handler stopped a statement past its deadline.
_SQLITE_UNAVAILABLE_CODES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_FULL",
    "SQLITE_INTERRUPT",
)
# SQLSTATE classes: connection exception, insufficient resources (too many clients),
# operator intervention (shutdown, statement timeout), system error, invalid catalog name
# (no such database), invalid authorization.
_POSTGRESQL_UNAVAILABLE_CLASSES = ("08", "53", "57", "58", "3D", "28")
_ASYNCPG_CONNECTION_SYMPTOMS = ("connection is closed", "another operation is in progress", "pool is closed")


class CatalogUnavailableError(Exception):
    """The database could not be reached or did not answer in time; worth retrying later."""


def is_unavailability(error: BaseException) -> bool:
    """Whether ``error`` says the database is unreachable, overloaded or slow, not that a query is wrong."""
    # asyncpg raises its connect errors (ConnectionRefusedError, socket.gaierror) and its
    # timeouts (TimeoutError) as they are, unwrapped; all are OSErrors.
    if isinstance(error, OSError):
        return True
    if isinstance(error, sqlite3.Error):
        name = getattr(error, "sqlite_errorname", "")
        return name.startswith(_SQLITE_UNAVAILABLE_CODES)
    sqlstate = getattr(error, "sqlstate", None)
    if type(error).__module__.startswith("asyncpg") and isinstance(sqlstate, str):
        return sqlstate.startswith(_POSTGRESQL_UNAVAILABLE_CLASSES)
    # asyncpg's own word for a connection that broke, or that a cancelled statement left busy.
    return type(error).__name__ == "InterfaceError" and any(
        symptom in str(error) for symptom in _ASYNCPG_CONNECTION_SYMPTOMS
    )


def describe(error: BaseException, seconds: float) -> str:
    if isinstance(error, TimeoutError):
        return f"the database did not answer within {seconds:g}s"
    return f"{type(error).__name__}: {error}"


class _Bounded:
    """``asyncio.timeout``, and unavailability errors turned into ``CatalogUnavailableError``."""

    __slots__ = ("_seconds", "_timeout")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def __aenter__(self) -> None:
        self._timeout = asyncio.timeout(self._seconds)
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(error_type, error, traceback)
        except TimeoutError as timed_out:
            raise CatalogUnavailableError(describe(timed_out, self._seconds)) from timed_out
        if isinstance(error, Exception):
            raise_if_unavailability(error, self._seconds)


def raise_if_unavailability(error: Exception, seconds: float) -> None:
    """Raise ``CatalogUnavailableError`` from ``error`` if it says the database is unavailable."""
    if not isinstance(error, CatalogUnavailableError) and is_unavailability(error):
        raise CatalogUnavailableError(describe(error, seconds)) from error


def bounded(seconds: float) -> AbstractAsyncContextManager[None]:
    """Give up after ``seconds``; raise ``CatalogUnavailableError`` for an unavailable database.

    The drivers' own timeouts (asyncpg's connect and command timeouts, SQLite's busy timeout
    and the store's progress handler) usually fire first; this bounds everything they do
    not, such as a wait for a connection or a whole transaction.
    """
    return _Bounded(seconds)
