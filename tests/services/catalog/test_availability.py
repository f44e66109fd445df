from __future__ import annotations

import asyncio
import sqlite3
import time

import asyncpg
import pytest

from services.catalog.availability import CatalogUnavailableError, bounded, is_unavailability

pytestmark = pytest.mark.anyio


def _sqlite_error(code_name: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(code_name.lower())
    error.sqlite_errorname = code_name
    return error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        _sqlite_error("SQLITE_BUSY"),
        _sqlite_error("SQLITE_IOERR_WRITE"),
        # The store's progress handler stopped a statement past its deadline.
        _sqlite_error("SQLITE_INTERRUPT"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InvalidCatalogNameError('database "catalog" does not exist'),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
    ],
    ids=repr,
)
def test_what_counts_as_an_unavailable_database(error: BaseException) -> None:
    assert is_unavailability(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        _sqlite_error("SQLITE_ERROR"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.DivisionByZeroError("division by zero"),
        asyncpg.PostgresSyntaxError("syntax error at or near"),
        asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
    ],
    ids=repr,
)
def test_bugs_are_not_unavailability(error: BaseException) -> None:
    assert not is_unavailability(error)


async def test_bounded_turns_unavailability_into_one_error_and_lets_bugs_through() -> None:
    with pytest.raises(CatalogUnavailableError, match="ConnectionRefusedError") as caught:
        async with bounded(1):
            raise ConnectionRefusedError(111, "Connect call failed")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)

    with pytest.raises(ValueError, match="a bug"):
        async with bounded(1):
            raise ValueError("a bug")


async def test_bounded_gives_up_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(CatalogUnavailableError, match=r"did not answer within 0.2s"):
        async with bounded(0.2):
            await asyncio.sleep(5)
    assert time.monotonic() - started < 1
