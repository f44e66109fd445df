"""Migrations on both stores: the first revision is the schema the code describes, an upgrade
is idempotent and safe to run twice at once, an old database is adopted, a newer one left alone."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.migrate import (
    BASELINE_REVISION,
    MIGRATIONS_DIRECTORY,
    MigrationError,
    alembic_config,
    create_revision,
    upgrade_schema,
)
from services.catalog.schema import HEAD_REVISION, VERSION_TABLE, SchemaState
from services.catalog.tables import metadata
from tests.services.databases import create_test_schema, drop_test_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Connection

pytestmark = pytest.mark.anyio

PROJECT_ROOT = Path(__file__).resolve().parents[3]
UPGRADES_AT_ONCE = 4


@pytest.fixture
def other_empty_database_url(empty_database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database on the same store as ``empty_database_url``."""
    url = make_url(empty_database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/other.sqlite3"
        return
    schema_url = create_test_schema(
        url.difference_update_query(["search_path"]).render_as_string(hide_password=False)
    )
    yield schema_url
    drop_test_schema(schema_url)


async def _on(url: str, work: Callable[[Connection], Any], *, write: bool = False) -> Any:
    """Run ``work`` in one transaction on ``url``; a write takes the write lock first."""
    engine = create_catalog_engine(url, busy_timeout=5)
    try:
        async with (writer_of(engine) if write else engine).begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _create_tables_as_before_migrations(connection: Connection) -> None:
    """What the store did itself before there were migrations."""
    metadata.create_all(connection)


def _shape(connection: Connection) -> dict[str, Any]:
    """Every table's columns, keys, indexes and checks, with their names, as the database reports them."""
    inspector = inspect(connection)
    shape: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
        primary_key = inspector.get_pk_constraint(table)
        shape[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"])
                for column in inspector.get_columns(table)
            ],
            "primary key": (primary_key["name"], primary_key["constrained_columns"]),
            "foreign keys": sorted(
                (
                    key["name"],
                    key["constrained_columns"],
                    key["referred_table"],
                    key["options"].get("ondelete"),
                )
                for key in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (index["name"], index["column_names"], index["unique"])
                for index in inspector.get_indexes(table)
            ),
            "checks": sorted(
                (check["name"], re.sub(r"\s+", " ", check["sqltext"]).strip("() "))
                for check in inspector.get_check_constraints(table)
            ),
        }
    if connection.dialect.name == "sqlite":
        # SQLite keeps each table's CREATE statement: it must be the very one the code emits.
        rows = connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE tbl_name != :version"), {"version": VERSION_TABLE}
        )
        shape["sqlite_master"] = sorted((name, sql) for name, sql in rows)
    return shape


def _differences_from_the_code(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _revisions(connection: Connection) -> list[str]:
    return [row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]  # noqa: S608


def _has_version_table(connection: Connection) -> bool:
    return inspect(connection).has_table(VERSION_TABLE)


async def test_the_migrations_create_exactly_the_tables_the_code_describes(
    empty_database_url: str, other_empty_database_url: str
) -> None:
    report = await upgrade_schema(empty_database_url)
    await _on(other_empty_database_url, _create_tables_as_before_migrations, write=True)

    migrated = await _on(empty_database_url, _shape)
    made_by_the_code = await _on(other_empty_database_url, _shape)

    assert report.before.state is SchemaState.MISSING
    assert report.after.state is SchemaState.CURRENT
    assert set(migrated) >= {"items", "item_tags", "idempotency_keys"}
    assert migrated == made_by_the_code
    assert await _on(empty_database_url, _differences_from_the_code) == []


async def test_an_upgrade_twice_changes_nothing_the_second_time(database_url: str) -> None:
    before = await _on(database_url, _shape)
    report = await upgrade_schema(database_url)
    assert report.before == report.after
    assert report.describe() == f"nothing to do: the schema is at revision {HEAD_REVISION} (current)"
    assert await _on(database_url, _shape) == before
    assert await _on(database_url, _revisions) == [HEAD_REVISION]


async def test_upgrades_run_at_once_migrate_exactly_once(empty_database_url: str) -> None:
    reports = await asyncio.gather(*(upgrade_schema(empty_database_url) for _ in range(UPGRADES_AT_ONCE)))
    # One took the lock on an empty database; the others waited, then found it current.
    assert sorted(report.before.state for report in reports) == sorted(
        [SchemaState.MISSING] + [SchemaState.CURRENT] * (UPGRADES_AT_ONCE - 1)
    )
    assert {report.after.state for report in reports} == {SchemaState.CURRENT}
    assert await _on(empty_database_url, _revisions) == [HEAD_REVISION]


async def test_a_database_made_before_migrations_is_adopted_with_its_items(empty_database_url: str) -> None:
    def create_with_an_item(connection: Connection) -> None:
        _create_tables_as_before_migrations(connection)
        connection.execute(
            text(
                "INSERT INTO items (name, price_cents, currency, created_at, updated_at, revision) "
                "VALUES ('Teapot', 1250, 'EUR', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
            )
        )

    await _on(empty_database_url, create_with_an_item, write=True)
    report = await upgrade_schema(empty_database_url)

    assert report.adopted
    assert report.before.state is SchemaState.MISSING
    assert report.after.state is SchemaState.CURRENT
    assert "adopted" in report.describe()
    assert await _on(empty_database_url, lambda c: c.execute(text("SELECT name FROM items")).all()) == [
        ("Teapot",)
    ]
    assert await _on(empty_database_url, _revisions) == [HEAD_REVISION]


@pytest.mark.parametrize(
    ("statements", "problem"),
    [
        (["CREATE TABLE items (id INTEGER PRIMARY KEY)"], "no table idempotency_keys, item_tags"),
        (["ALTER TABLE items ADD COLUMN colour TEXT"], "other columns in items"),
    ],
    ids=["some tables", "other columns"],
)
async def test_tables_this_gateway_did_not_make_stop_the_upgrade(
    empty_database_url: str, statements: list[str], problem: str
) -> None:
    def prepare(connection: Connection) -> None:
        if not statements[0].startswith("CREATE"):
            _create_tables_as_before_migrations(connection)
        for statement in statements:
            connection.execute(text(statement))

    await _on(empty_database_url, prepare, write=True)
    with pytest.raises(MigrationError, match=problem) as raised:
        await upgrade_schema(empty_database_url)
    assert "gateway db upgrade" in str(raised.value)
    # Rolled back whole: not even the version table stays.
    assert not await _on(empty_database_url, _has_version_table)


async def test_a_schema_a_newer_release_migrated_is_left_alone(database_url: str) -> None:
    await _on(database_url, lambda c: c.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")))  # noqa: S608
    report = await upgrade_schema(database_url)
    assert report.before.state is SchemaState.AHEAD
    assert report.describe().startswith("nothing to do: ")
    assert await _on(database_url, _revisions) == ["9999"]


async def test_the_migrations_downgrade_to_nothing_and_upgrade_again(database_url: str) -> None:
    await _on(database_url, lambda c: command.downgrade(alembic_config(c), "base"), write=True)
    tables = await _on(database_url, lambda c: inspect(c).get_table_names())
    # SQLite's own table of AUTOINCREMENT counters stays once made.
    assert set(tables) - {VERSION_TABLE, "sqlite_sequence"} == set()
    report = await upgrade_schema(database_url)
    assert report.after.state is SchemaState.CURRENT


async def test_a_new_revision_follows_the_head_and_finds_no_change(database_url: str, tmp_path: Path) -> None:
    # A copy of the scripts, so that the package's own stay as they are.
    copy = tmp_path / "migrations"
    (copy / "versions").mkdir(parents=True)
    for path in [*MIGRATIONS_DIRECTORY.glob("*.*"), *MIGRATIONS_DIRECTORY.glob("versions/*.py")]:
        (copy / path.relative_to(MIGRATIONS_DIRECTORY)).write_bytes(path.read_bytes())

    [written] = await create_revision(database_url, "nothing yet", autogenerate=True, directory=copy)

    script = written.read_text(encoding="utf-8")
    next_revision = f"{int(HEAD_REVISION) + 1:04d}"
    assert written.name == f"{next_revision}_nothing_yet.py"
    assert f"revision: str = '{next_revision}'" in script
    assert f"down_revision: str | Sequence[str] | None = '{HEAD_REVISION}'" in script
    # The database is at the head and tables.py has not changed: nothing to migrate.
    assert re.search(r"def upgrade\(\) -> None:\n(\s+#.*\n)*\s+pass\n", script), script


def test_an_installed_package_carries_every_migration_file() -> None:
    package_data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]["services.catalog"]
    package = MIGRATIONS_DIRECTORY.parent
    shipped = {path for pattern in package_data for path in package.glob(pattern)}
    # Setuptools ships a regular package's modules by itself; everything else must be listed.
    needed = {
        path
        for path in MIGRATIONS_DIRECTORY.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and not (path.suffix == ".py" and (path.parent / "__init__.py").exists())
    }
    assert {path.name for path in needed} >= {"script.py.mako", f"{BASELINE_REVISION}_initial_schema.py"}
    assert needed <= shipped, sorted(str(path) for path in needed - shipped)
