from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import exc

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
        exc.TimeoutError("QueuePool limit reached"),
        exc.OperationalError("BEGIN IMMEDIATE", {}, _sqlite_error("SQLITE_BUSY")),
        exc.OperationalError("INSERT", {}, _sqlite_error("SQLITE_IOERR_WRITE")),
        exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        exc.DBAPIError(None, None, Exception('database "catalog" does not exist')),
        exc.DBAPIError("SELECT 1", {}, Exception("connection was closed"), connection_invalidated=True),
    ],
    ids=repr,
)
def test_what_counts_as_an_unavailable_database(error: BaseException) -> None:
    assert is_unavailability(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        exc.OperationalError("SELEC 1", {}, _sqlite_error("SQLITE_ERROR")),
        exc.DBAPIError("SELECT 1/0", {}, Exception("division by zero")),
        exc.ProgrammingError("SELEC", {}, Exception("syntax error")),
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
