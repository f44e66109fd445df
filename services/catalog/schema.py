"""Whether the database holds the schema this code needs, read without running any DDL.

The schema changes only through migrations (``migrations/``), applied once per deploy by
``gateway db upgrade``; workers never create or alter a table. A store reads the revision
the database is at (Alembic's ``alembic_version`` table) when it first reaches it, and
keeps the answer once the schema is current. Behind the code, every catalog call fails
with ``SchemaNotCurrentError``: a 503 and a failed readiness check that say what to run,
rather than a 500 "no such table".

Importing Alembic costs each worker about 9 MB and 0.2 s, so the revisions the code knows
are listed here; a test keeps the list equal to the migration scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from services.catalog.availability import CatalogUnavailableError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.catalog.database import Database

VERSION_TABLE = "alembic_version"
# Every revision in services/catalog/migrations/versions, oldest first. The last one is the
# schema this code needs; a database at a revision not listed was migrated by a newer release.
REVISIONS = ("0001",)
HEAD_REVISION = REVISIONS[-1]
UPGRADE_COMMAND = "gateway db upgrade"


class SchemaState(StrEnum):
    MISSING = "missing"  # No revision at all: a new database, or one made before migrations.
    BEHIND = "behind"
    CURRENT = "current"
    # Migrated by a newer release (a rollout's migration step runs before the old pods go):
    # still served, since each migration must keep the release before it working.
    AHEAD = "ahead"


@dataclass(frozen=True)
class SchemaStatus:
    """The revisions the database is at (several only with unmerged branches), against the code's."""

    database_revisions: tuple[str, ...]
    # The code's revisions, oldest first; the last is the one it needs. ``gateway db``
    # passes the migration scripts' own list; workers use REVISIONS.
    code_revisions: tuple[str, ...] = REVISIONS

    @property
    def code_revision(self) -> str:
        return self.code_revisions[-1]

    @property
    def state(self) -> SchemaState:
        if not self.database_revisions:
            return SchemaState.MISSING
        if any(revision not in self.code_revisions for revision in self.database_revisions):
            return SchemaState.AHEAD
        if self.database_revisions == (self.code_revision,):
            return SchemaState.CURRENT
        return SchemaState.BEHIND

    @property
    def servable(self) -> bool:
        return self.state in (SchemaState.CURRENT, SchemaState.AHEAD)

    @property
    def database_revision(self) -> str:
        return ", ".join(self.database_revisions) or "none"

    def describe(self) -> str:
        state = self.state
        if state is SchemaState.MISSING:
            return (
                f"the database has no catalog schema (no revision), the code needs revision "
                f"{self.code_revision}: run `{UPGRADE_COMMAND}`"
            )
        if state is SchemaState.BEHIND:
            return (
                f"the database schema is at revision {self.database_revision}, the code needs "
                f"{self.code_revision}: run `{UPGRADE_COMMAND}`"
            )
        if state is SchemaState.AHEAD:
            return (
                f"the database schema is at revision {self.database_revision}, newer than this "
                f"code's {self.code_revision}: a newer release migrated it"
            )
        return f"the database schema is at revision {self.code_revision}, as the code needs"


class SchemaNotCurrentError(CatalogUnavailableError):
    """The database's schema is behind the code: nothing is served until it is upgraded."""

    def __init__(self, status: SchemaStatus) -> None:
        super().__init__(status.describe())
        self.status = status


async def read_schema_status(connection: AsyncConnection) -> SchemaStatus:
    """The revisions ``connection``'s database is at (the table is looked up on the search path)."""
    return await connection.run_sync(schema_status_of)


# Whether the version table is on the search path, without a failing SELECT (see below).
_HAS_VERSION_TABLE = {
    "postgresql": text(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL"),
    "sqlite": text(
        f"SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '{VERSION_TABLE}'"  # noqa: S608 - a constant
    ),
}
_VERSIONS = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant


async def read_schema_status_with(database: Database) -> SchemaStatus:
    """``read_schema_status`` on the store's own database (``database.py``)."""
    [(has_table,)] = await database.read(_HAS_VERSION_TABLE[database.dialect_name], {})
    if not has_table:
        return SchemaStatus(database_revisions=())
    rows = await database.read(_VERSIONS, {})
    return SchemaStatus(database_revisions=tuple(sorted(row[0] for row in rows)))


def schema_status_of(connection: Connection, code_revisions: tuple[str, ...] = REVISIONS) -> SchemaStatus:
    """``read_schema_status`` on a synchronous connection (inside ``run_sync``)."""
    # Looked up first: on PostgreSQL a failed SELECT would abort the caller's transaction.
    if not inspect(connection).has_table(VERSION_TABLE):
        return SchemaStatus(database_revisions=(), code_revisions=code_revisions)
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608 - a constant
    return SchemaStatus(
        database_revisions=tuple(sorted(row[0] for row in rows)), code_revisions=code_revisions
    )
