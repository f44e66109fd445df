"""``gateway db``: migrate the catalog's schema, and say whether the database is ready for this code.

The catalog's extension of the gateway (``CATALOG_EXTENSION``, declared by every app built
on the catalog): these commands, and ``prepare_database`` before the workers fork.

- ``upgrade``: apply the missing migrations (idempotent; safe when two run at once). Run it
  once per deploy: a Kubernetes init container or Job, a release step. ``gateway serve``
  runs it itself before its workers fork when ``GATEWAY_DATABASE_MIGRATE_ON_START`` is on
  (the default for SQLite, so a fresh checkout just serves).
- ``current``: the database's revision and the code's.
- ``check``: both, plus the connection budget against the server's ``max_connections``;
  exit 1 when the schema is behind or the budget is over, for a deploy pipeline to stop on.
- ``revision``: write the next migration script (for developers).

The catalog's modules are imported inside the commands: only these need Alembic's imports.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from sqlalchemy.engine import make_url

from gateway.api import AppExtension, configured_worker_count
from services.catalog.settings import CatalogSettings

if TYPE_CHECKING:
    from gateway.api import Commands, SettingsLoader
    from services.catalog.connections import ConnectionBudget
    from services.catalog.schema import SchemaStatus

Command = Callable[[argparse.Namespace], None]
_Result = TypeVar("_Result")
# aiosqlite names its connection threads after their function.
_AIOSQLITE_THREAD = "(_connection_worker_thread)"
_THREAD_SETTLE_POLLS = 100
_THREAD_SETTLE_PAUSE = 0.01
logger = logging.getLogger("gateway.database")


def add_db_commands(
    commands: Commands[argparse.ArgumentParser], load_settings: SettingsLoader[CatalogSettings]
) -> None:
    """Register ``gateway db upgrade|current|check|revision``."""
    database = commands.add_parser("db", help="the catalog database: migrations and readiness for this code")
    database.set_defaults(load_settings=load_settings)
    actions = database.add_subparsers(
        dest="db_command", metavar="{upgrade,current,check,revision}", required=True
    )
    upgrade = actions.add_parser("upgrade", help="apply the missing migrations (once per deploy; idempotent)")
    upgrade.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to connect, to wait for another upgrade, and for each statement (default: 300)",
    )
    upgrade.set_defaults(run=_upgrade)
    actions.add_parser("current", help="print the database's schema revision and the code's").set_defaults(
        run=_current
    )
    check = actions.add_parser(
        "check", help="the schema and the connection budget; exit 1 if either would fail the gateway"
    )
    check.add_argument(
        "--workers",
        type=_worker_count,
        default=None,
        help="worker processes per replica (default: GATEWAY_WORKERS, WEB_CONCURRENCY, or the usable CPUs)",
    )
    check.set_defaults(run=_check)
    revision = actions.add_parser("revision", help="write the next migration script (developers)")
    revision.add_argument("-m", "--message", required=True, help="what the migration changes")
    revision.add_argument(
        "--autogenerate",
        action="store_true",
        help="fill it with the differences from the (upgraded) database to services/catalog/tables.py",
    )
    revision.set_defaults(run=_revision)


def _worker_count(text: str) -> int:
    count = int(text) if text.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a worker count is a whole number of at least 1")
    return count


def prepare_database(settings: CatalogSettings, *, workers: int) -> None:
    """What a process group does once before its workers start: migrate when the settings say
    so, then warn about a schema behind the code or a connection budget over the server's limit.

    A failed migration raises ``SystemExit`` with one line; an unreachable database when not
    migrating only warns (the workers come up unready and recover when it answers).
    """
    from sqlalchemy.engine import make_url

    from services.catalog.migrate import upgrade_schema

    url = _shown(settings.database_url)
    if settings.migrates_database_on_start:
        try:
            report = _run_to_completion(upgrade_schema(settings.database_url))
        # Any failure stops the start, and the driver's message is what the operator needs.
        except Exception as error:
            raise SystemExit(
                f"gateway: migrating the catalog database at {url} failed: {_describe(error)}"
            ) from None
        logger.info("catalog database at %s: %s", url, report.describe())
        if make_url(settings.database_url).get_backend_name() != "postgresql":
            return  # Just migrated, and only PostgreSQL has a connection budget to check.
    try:
        status, budget = _run_to_completion(_inspect(settings, workers, settings.database_timeout))
    except Exception as error:  # Advice only: the workers report the database themselves.
        logger.warning("could not inspect the catalog database at %s: %s", url, _describe(error))
        return
    if not status.servable:
        logger.error("the catalog will answer 503 until this is fixed: %s", status.describe())
    if budget is not None and budget.exceeded:
        logger.warning(
            "the catalog's connection pools may need more connections than PostgreSQL allows: %s; "
            "lower GATEWAY_DATABASE_POOL_SIZE or GATEWAY_DATABASE_MAX_OVERFLOW, or raise max_connections",
            budget.describe(),
        )


def _run_to_completion(coroutine: Coroutine[Any, Any, _Result]) -> _Result:
    """``asyncio.run``, but a failure leaves the loop open until aiosqlite's threads are done.

    aiosqlite 0.22 stops the thread of a connection that failed to open without waiting for
    it (``Connection._connect`` calls ``stop()`` and returns), so the thread later calls back
    into the loop; once ``asyncio.run`` has closed it, that is "Event loop is closed" and a
    traceback on stderr after the one-line message.
    """

    async def settled() -> _Result:
        try:
            return await coroutine
        except BaseException:
            for _attempt in range(_THREAD_SETTLE_POLLS):
                if not any(thread.name.endswith(_AIOSQLITE_THREAD) for thread in threading.enumerate()):
                    break
                await asyncio.sleep(_THREAD_SETTLE_PAUSE)
            raise

    return asyncio.run(settled())


def _reporting_errors(command: Command) -> Command:
    # One readable line and exit 1, never a traceback, for what an operator can fix.
    @functools.wraps(command)
    def run(arguments: argparse.Namespace) -> None:
        try:
            command(arguments)
        except SystemExit:
            raise
        except Exception as error:
            _fail(_describe(error))

    return run


def _fail(message: str) -> NoReturn:
    print(f"gateway db: {message}", file=sys.stderr)
    raise SystemExit(1)


@_reporting_errors
def _upgrade(arguments: argparse.Namespace) -> None:
    from services.catalog.migrate import upgrade_schema

    settings = _settings(arguments)
    timeout = {} if arguments.timeout is None else {"statement_timeout": arguments.timeout}
    report = _run_to_completion(upgrade_schema(settings.database_url, **timeout))
    print(f"{_shown(settings.database_url)}: {report.describe()}")


@_reporting_errors
def _current(arguments: argparse.Namespace) -> None:
    from services.catalog.migrate import read_status

    settings = _settings(arguments)
    status = _run_to_completion(
        read_status(settings.database_url, statement_timeout=settings.database_timeout)
    )
    print(f"database: {status.database_revision} ({status.state})")
    print(f"code:     {status.code_revision}")


@_reporting_errors
def _check(arguments: argparse.Namespace) -> None:
    settings = _settings(arguments)
    workers = arguments.workers or configured_worker_count()
    status, budget = _run_to_completion(_inspect(settings, workers, settings.database_timeout))
    print(f"database:    {_shown(settings.database_url)}")
    print(f"schema:      {status.describe()}")
    if budget is None:
        print("connections: SQLite (one file, no server connection limit)")
    else:
        print(f"connections: {budget.describe()}")
    if not status.servable or (budget is not None and budget.exceeded):
        raise SystemExit(1)


@_reporting_errors
def _revision(arguments: argparse.Namespace) -> None:
    from services.catalog.migrate import create_revision

    settings = _settings(arguments)
    paths = _run_to_completion(
        create_revision(settings.database_url, arguments.message, autogenerate=arguments.autogenerate)
    )
    for path in paths:
        print(f"wrote {path}")
    print(
        "next: review it, add its revision id to REVISIONS in services/catalog/schema.py, then run the tests"
    )


async def _inspect(
    settings: CatalogSettings, workers: int, statement_timeout: float
) -> tuple[SchemaStatus, ConnectionBudget | None]:
    """The schema's status and, on PostgreSQL, the connection budget with the server's limit."""
    from services.catalog.connections import ConnectionBudget, server_connection_limit
    from services.catalog.engine import create_catalog_engine
    from services.catalog.schema import read_schema_status

    engine = create_catalog_engine(
        settings.database_url, busy_timeout=statement_timeout, timeout=statement_timeout
    )
    try:
        async with engine.connect() as connection:
            status = await read_schema_status(connection)
            if connection.dialect.name != "postgresql":
                return status, None
            budget = ConnectionBudget(
                replicas=settings.database_replicas,
                workers=workers,
                pool_size=settings.database_pool_size,
                max_overflow=settings.database_max_overflow,
            )
            return status, budget.with_server_limit(await server_connection_limit(connection))
    finally:
        await engine.dispose()


def _describe(error: BaseException) -> str:
    """One line: the driver's message without SQLAlchemy's statement and background link."""
    from sqlalchemy.exc import DBAPIError

    from services.catalog.migrate import MigrationError

    if isinstance(error, MigrationError):
        return str(error)
    if isinstance(error, TimeoutError):
        return "the database did not answer in time"
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return f"{type(cause).__name__}: {cause}".splitlines()[0]


def _shown(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


def _settings(arguments: argparse.Namespace) -> CatalogSettings:
    settings: CatalogSettings = arguments.load_settings(None)
    return settings


CATALOG_EXTENSION = AppExtension(
    name="catalog",
    settings=CatalogSettings,
    prepare=lambda settings, workers: prepare_database(settings, workers=workers),
    add_commands=add_db_commands,
)
