"""The process group's count of who calls which version, in one SQLite file all workers share.

Under Gunicorn the file lives in the metrics directory, which the arbiter makes once and
keeps across HUP reloads, so the counts outlive every worker. Each worker adds its ledger
once a second in one short transaction; the cap on named callers per version is applied
here, across the workers, inside that transaction (the rest is counted as ``other``). A
lone process (tests, ``gateway dev``) keeps the same tables in memory.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.sqlite import use_write_ahead_log
from gateway.usage.ledger import OTHER_CALLER

if TYPE_CHECKING:
    from gateway.usage.ledger import UsageBatch

USAGE_FILE_NAME = "usage.sqlite3"
# A worker's hand-over waits this long for another's before it gives up (and keeps its counts).
_BUSY_TIMEOUT_MILLISECONDS = 2000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS callers (
    version TEXT NOT NULL, caller TEXT NOT NULL, requests INTEGER NOT NULL, refused INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, PRIMARY KEY (version, caller));
CREATE TABLE IF NOT EXISTS caller_routes (
    version TEXT NOT NULL, caller TEXT NOT NULL, route TEXT NOT NULL, requests INTEGER NOT NULL,
    PRIMARY KEY (version, caller, route));
CREATE TABLE IF NOT EXISTS caller_statuses (
    version TEXT NOT NULL, caller TEXT NOT NULL, status_class TEXT NOT NULL, requests INTEGER NOT NULL,
    PRIMARY KEY (version, caller, status_class));
"""
_ADD_CALLER = """
INSERT INTO callers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version, caller) DO UPDATE SET
    requests = requests + excluded.requests, refused = refused + excluded.refused,
    first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
"""
_ADD_ROUTE = """
INSERT INTO caller_routes VALUES (?, ?, ?, ?) ON CONFLICT (version, caller, route) DO UPDATE SET
    requests = requests + excluded.requests
"""
_ADD_STATUS = """
INSERT INTO caller_statuses VALUES (?, ?, ?, ?) ON CONFLICT (version, caller, status_class) DO UPDATE SET
    requests = requests + excluded.requests
"""


@dataclass(frozen=True)
class CallerUsage:
    version: str
    caller: str
    requests: int
    refused: int
    first_seen: float
    last_seen: float
    top_routes: list[tuple[str, int]]
    status_classes: dict[str, int]


def usage_location(metrics_directory: str | None) -> str:
    """The group's shared file under Gunicorn (its metrics directory), else memory."""
    return os.path.join(metrics_directory, USAGE_FILE_NAME) if metrics_directory else ":memory:"


class UsageStore:
    def __init__(self, location: str, callers_per_version: int, top_routes: int = 5) -> None:
        self.location = location
        self.callers_per_version = callers_per_version
        self.top_routes = top_routes
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._connection_pid = 0

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork (a preloaded app is built in the arbiter).
        if self._connection is None or self._connection_pid != os.getpid():
            connection = sqlite3.connect(
                self.location,
                timeout=_BUSY_TIMEOUT_MILLISECONDS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            if self.location != ":memory:":
                # Every worker opens the file on its first request: they race to switch it.
                use_write_ahead_log(connection.cursor(), timeout=_BUSY_TIMEOUT_MILLISECONDS / 1000)
            connection.executescript(_SCHEMA)
            self._connection, self._connection_pid = connection, os.getpid()
        return self._connection

    def add(self, batch: UsageBatch) -> None:
        """Add one worker's ledger to the group's counts, in one transaction."""
        if not batch:
            return
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                for (version, caller), counts in batch.by_caller().items():
                    named = self._admitted(connection, version, caller)
                    connection.execute(
                        _ADD_CALLER,
                        (version, named, counts.requests, counts.refused, batch.started, batch.ended),
                    )
                    connection.executemany(
                        _ADD_ROUTE, [(version, named, route, n) for route, n in counts.routes.items()]
                    )
                    connection.executemany(
                        _ADD_STATUS,
                        [(version, named, status, n) for status, n in counts.status_classes.items()],
                    )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _admitted(self, connection: sqlite3.Connection, version: str, caller: str) -> str:
        """The caller's own name while the version has room for it, else ``other``."""
        if caller == OTHER_CALLER:
            return caller
        known = connection.execute(
            "SELECT 1 FROM callers WHERE version = ? AND caller = ?", (version, caller)
        ).fetchone()
        if known is not None:
            return caller
        (named,) = connection.execute(
            "SELECT count(*) FROM callers WHERE version = ? AND caller != ?", (version, OTHER_CALLER)
        ).fetchone()
        return caller if named < self.callers_per_version else OTHER_CALLER

    def callers(self) -> list[CallerUsage]:
        """Every version's callers, the most recently seen first."""
        with self._lock:
            connection = self._connect()
            rows = connection.execute(
                "SELECT version, caller, requests, refused, first_seen, last_seen FROM callers"
                " ORDER BY version, last_seen DESC, caller"
            ).fetchall()
            routes: dict[tuple[str, str], list[tuple[str, int]]] = {}
            for version, caller, route, requests in connection.execute(
                "SELECT version, caller, route, requests FROM caller_routes ORDER BY requests DESC, route"
            ):
                routes.setdefault((version, caller), []).append((route, requests))
            statuses: dict[tuple[str, str], dict[str, int]] = {}
            for version, caller, status_class, requests in connection.execute(
                "SELECT version, caller, status_class, requests FROM caller_statuses ORDER BY status_class"
            ):
                statuses.setdefault((version, caller), {})[status_class] = requests
        return [
            CallerUsage(
                version=version,
                caller=caller,
                requests=requests,
                refused=refused,
                first_seen=first_seen,
                last_seen=last_seen,
                top_routes=routes.get((version, caller), [])[: self.top_routes],
                status_classes=statuses.get((version, caller), {}),
            )
            for version, caller, requests, refused, first_seen, last_seen in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection_pid == os.getpid():
                self._connection.close()
            self._connection = None
