"""The SQLite adapter: reads run in the event loop, so the deadline must stop a slow one."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.catalog.availability import is_unavailability
from services.catalog.sqlite_database import SqliteDatabase

pytestmark = pytest.mark.anyio

# Counts without end: only an interruption ends it.
ENDLESS = text(
    "WITH RECURSIVE counter(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counter) SELECT max(n) FROM counter"
)


async def test_a_read_past_its_deadline_is_interrupted_as_unavailability(sqlite_url: str) -> None:
    database = SqliteDatabase(make_url(sqlite_url), busy_timeout=1, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError) as interrupted:
            await database.read(ENDLESS, {})
        elapsed = time.monotonic() - started
        # The next read on the same connection runs normally.
        assert await database.read(text("SELECT 1"), {}) == [(1,)]
    finally:
        await database.close()
    assert 0.3 <= elapsed < 1.5
    assert is_unavailability(interrupted.value)
