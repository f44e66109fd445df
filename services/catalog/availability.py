"""When the database cannot answer: which errors mean that, and a bound on every wait.

A request that meets an unreachable, locked or slow database should be told to come back
later (503), not see a 500, and no worker should wait on it indefinitely. The store runs
every call inside ``bounded``, which turns those errors into ``CatalogUnavailableError``;
a bug (a constraint violated, bad SQL) keeps its own type and stays a 500.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import exc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# SQLite reports syntax errors and missing tables as OperationalError too; only these
# primary result codes (and their extended forms, SQLITE_BUSY_SNAPSHOT...) mean "not now".
_SQLITE_UNAVAILABLE_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")


class CatalogUnavailableError(Exception):
    """The database could not be reached or did not answer in time; worth retrying later."""


def is_unavailability(error: BaseException) -> bool:
    """Whether ``error`` says the database is unreachable, overloaded or slow, not that a query is wrong."""
    # asyncpg raises its connect errors (ConnectionRefusedError, socket.gaierror) and its
    # timeouts (TimeoutError) as they are, unwrapped; all are OSErrors.
    if isinstance(error, OSError | exc.TimeoutError):  # exc.TimeoutError: no pooled connection in time.
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if isinstance(error.orig, sqlite3.Error):
        name = getattr(error.orig, "sqlite_errorname", "")
        return name.startswith(_SQLITE_UNAVAILABLE_CODES)
    # statement None: connecting failed (server gone, unknown database, too many clients).
    return (
        isinstance(error, exc.OperationalError | exc.InterfaceError)
        or error.connection_invalidated
        or error.statement is None
    )


def describe(error: BaseException, seconds: float) -> str:
    if isinstance(error, TimeoutError):
        return f"the database did not answer within {seconds:g}s"
    if isinstance(error, exc.DBAPIError):
        # The driver's message without SQLAlchemy's statement and background link.
        return f"{type(error.orig).__name__}: {error.orig}"
    return f"{type(error).__name__}: {error}"


@asynccontextmanager
async def bounded(seconds: float) -> AsyncIterator[None]:
    """Give up after ``seconds``; raise ``CatalogUnavailableError`` for an unavailable database.

    The drivers' own timeouts (asyncpg's connect and command timeouts, SQLite's busy timeout)
    usually fire first; this bounds everything they do not, such as a whole transaction.
    """
    try:
        async with asyncio.timeout(seconds):
            yield
    except CatalogUnavailableError:
        raise
    except Exception as error:
        if not is_unavailability(error):
            raise
        raise CatalogUnavailableError(describe(error, seconds)) from error
