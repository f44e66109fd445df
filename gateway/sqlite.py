"""SQLite files shared by the processes of a group: the catalog's, the usage counts'."""

from __future__ import annotations

import time
from typing import Any

_WAL_SWITCH_ATTEMPTS = 200
_WAL_SWITCH_PAUSE_SECONDS = 0.025


def use_write_ahead_log(cursor: Any, *, timeout: float) -> None:
    """Switch the file to WAL, which lets readers proceed while one writer writes.

    The mode persists in the file, so this is a read once the first connection set it.
    Only the switch itself can meet "database is locked": it needs the file to itself, and
    SQLite does not wait for that with the busy timeout when several processes open a new
    file at once (seen with 8 stores starting together). So the switch is retried, bounded.
    """
    deadline = time.monotonic() + timeout
    for _attempt in range(_WAL_SWITCH_ATTEMPTS):
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        # sqlite3's OperationalError, or SQLAlchemy's adaptation of it under aiosqlite.
        except Exception as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        # Blocking, but only while processes race to create a new database file.
        time.sleep(_WAL_SWITCH_PAUSE_SECONDS)
    raise RuntimeError("could not switch the SQLite database to WAL mode")
