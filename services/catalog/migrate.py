"""Apply the catalog's migrations: once per deploy, safely from several processes at once.

``gateway db upgrade`` calls ``upgrade_schema``: one transaction that first takes the
migration lock (a PostgreSQL advisory lock; on SQLite ``BEGIN IMMEDIATE``, the file's write
lock), then reads the revision, and runs whatever migrations are missing. A second upgrade
started meanwhile waits for the lock, then finds the schema current and does nothing.

A database the store created itself before there were migrations (its tables, no
``alembic_version``) is adopted: recorded at the baseline revision those tables are, then
upgraded like any other. Tables that only partly match stop the upgrade with a message.

This module imports Alembic; workers do not (see ``schema.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.schema import SchemaState, SchemaStatus, read_schema_status, schema_status_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIRECTORY = Path(__file__).with_name("migrations")
# Long enough for a second upgrade to wait out a first one that migrates many rows.
DEFAULT_MIGRATION_TIMEOUT = 300.0
# Any fixed key will do; the same one the store used when it created its own tables.
_POSTGRESQL_MIGRATION_LOCK_KEY = 0x0CA7A106
# The revision whose tables the store created itself before migrations, and their columns.
BASELINE_REVISION = "0001"
_TABLES_BEFORE_MIGRATIONS = {
    "items": {
        "id",
        "name",
        "description",
        "price_cents",
        "currency",
        "created_at",
        "updated_at",
        "revision",
    },
    "item_tags": {"item_id", "tag", "position"},
    "idempotency_keys": {
        "operation",
        "idempotency_key",
        "request_hash",
        "claim_token",
        "created_at",
        "expires_at",
        "locked_until",
        "response_status",
        "response_headers",
        "response_body",
    },
}
logger = logging.getLogger("services.catalog.migrate")


class MigrationError(Exception):
    """A database this cannot migrate as it is; the message says why and what to do."""


@dataclass(frozen=True)
class UpgradeReport:
    before: SchemaStatus
    after: SchemaStatus
    adopted: bool = False  # Tables made before migrations, recorded at the baseline revision.

    def describe(self) -> str:
        if self.before.state is SchemaState.AHEAD:
            return f"nothing to do: {self.before.describe()}"
        if self.before.database_revisions == self.after.database_revisions:
            return f"nothing to do: the schema is at revision {self.after.database_revision} (current)"
        adopted = f" (adopted tables made before migrations at {BASELINE_REVISION})" if self.adopted else ""
        return (
            f"upgraded the schema from revision {self.before.database_revision}{adopted} "
            f"to {self.after.database_revision}"
        )


def alembic_config(connection: Connection | None = None, *, directory: Path = MIGRATIONS_DIRECTORY) -> Config:
    """Alembic's configuration, built in code: no alembic.ini, the scripts inside the package."""
    config = Config()
    config.set_main_option("script_location", str(directory))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def code_revisions(directory: Path = MIGRATIONS_DIRECTORY) -> list[str]:
    """The revisions of the migration scripts, oldest first (the migrations are linear)."""
    script = ScriptDirectory.from_config(alembic_config(directory=directory))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


async def upgrade_schema(
    database_url: str, *, statement_timeout: float = DEFAULT_MIGRATION_TIMEOUT
) -> UpgradeReport:
    """Bring the database to the code's revision; ``statement_timeout`` bounds connecting,
    waiting for the lock, and each statement."""
    engine = _migration_engine(database_url, statement_timeout)
    try:
        async with writer_of(engine).connect() as connection:
            if connection.dialect.name == "sqlite":
                await connection.run_sync(_defer_sqlite_foreign_keys)
            async with connection.begin():
                return await connection.run_sync(_upgrade_holding_the_lock)
    finally:
        await engine.dispose()


async def read_status(database_url: str, *, statement_timeout: float) -> SchemaStatus:
    """The database's revision against the code's, as ``gateway db current`` prints it."""
    engine = _migration_engine(database_url, statement_timeout)
    try:
        async with engine.connect() as connection:
            return await read_schema_status(connection)
    finally:
        await engine.dispose()


async def create_revision(
    database_url: str,
    message: str,
    *,
    autogenerate: bool,
    statement_timeout: float = DEFAULT_MIGRATION_TIMEOUT,
    directory: Path = MIGRATIONS_DIRECTORY,
) -> list[Path]:
    """Write the next migration script into ``directory``; with ``autogenerate``, the changes
    from the database (which must be current) to ``tables.py``. The database stays as it is."""
    engine = _migration_engine(database_url, statement_timeout)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_write_revision, message, autogenerate, directory)
    finally:
        await engine.dispose()


def _migration_engine(database_url: str, statement_timeout: float) -> AsyncEngine:
    # A second SQLite upgrade waits for the first one's write lock as long as the timeout.
    return create_catalog_engine(database_url, busy_timeout=statement_timeout, timeout=statement_timeout)


def _defer_sqlite_foreign_keys(connection: Connection) -> None:
    # SQLite rebuilds a table to alter it ("move and copy"), and dropping the old copy of
    # items would cascade to item_tags while foreign keys are on. The pragma is ignored
    # inside a transaction, so it goes straight to the driver, before BEGIN; the keys are
    # checked once at the end instead (https://www.sqlite.org/lang_altertable.html).
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("PRAGMA foreign_keys = OFF")
    finally:
        cursor.close()


def _upgrade_holding_the_lock(connection: Connection) -> UpgradeReport:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRESQL_MIGRATION_LOCK_KEY}
        )
    # The scripts themselves say which revisions exist, whatever schema.REVISIONS lists.
    known = tuple(code_revisions())
    before = schema_status_of(connection, known)
    if before.state is SchemaState.AHEAD:
        # Not an error: an older release's deploy step (a rollback) must not fail on it.
        logger.warning("not migrating: %s", before.describe())
        return UpgradeReport(before=before, after=before)
    config = alembic_config(connection)
    adopted = before.state is SchemaState.MISSING and _adopt_tables_made_before_migrations(connection, config)
    command.upgrade(config, "head")
    if connection.dialect.name == "sqlite":
        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if violations:
            raise MigrationError(f"the migration broke foreign keys (rolled back): {violations[:5]}")
    return UpgradeReport(before=before, after=schema_status_of(connection, known), adopted=adopted)


def _adopt_tables_made_before_migrations(connection: Connection, config: Config) -> bool:
    """Stamp the baseline revision on tables the store created itself; False when there are none."""
    present = set(inspect(connection).get_table_names()) & _TABLES_BEFORE_MIGRATIONS.keys()
    if not present:
        return False
    missing = sorted(_TABLES_BEFORE_MIGRATIONS.keys() - present)
    differing = sorted(
        table
        for table in present
        if {column["name"] for column in inspect(connection).get_columns(table)}
        != _TABLES_BEFORE_MIGRATIONS[table]
    )
    if missing or differing:
        problems = [
            *([f"no table {', '.join(missing)}"] if missing else []),
            *([f"other columns in {', '.join(differing)}"] if differing else []),
        ]
        raise MigrationError(
            f"the database has catalog tables ({', '.join(sorted(present))}) but no revision, and they "
            f"are not the ones this gateway made before migrations ({'; '.join(problems)}): "
            "move them aside or point GATEWAY_DATABASE_URL elsewhere, then run `gateway db upgrade` again"
        )
    MigrationContext.configure(connection).stamp(ScriptDirectory.from_config(config), BASELINE_REVISION)
    logger.warning(
        "adopted catalog tables made before migrations: recorded at revision %s", BASELINE_REVISION
    )
    return True


def _write_revision(connection: Connection, message: str, autogenerate: bool, directory: Path) -> list[Path]:
    revisions = code_revisions(directory)
    if autogenerate:
        status = schema_status_of(connection, tuple(revisions))
        if status.state is not SchemaState.CURRENT:
            raise MigrationError(f"autogenerate compares with a current database: {status.describe()}")
    # Numbered revisions: the files sort in the order they apply.
    next_id = f"{int(revisions[-1]) + 1:04d}" if revisions else BASELINE_REVISION
    config = alembic_config(connection, directory=directory)
    written = command.revision(config, message, autogenerate=autogenerate, rev_id=next_id)
    scripts = written if isinstance(written, list) else [written]
    return [Path(script.path) for script in scripts if script is not None]
