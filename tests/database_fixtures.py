"""Catalog databases for any test (a pytest plugin the root conftest loads): a migrated SQLite
file per test, a schema of a real PostgreSQL per test, and both stores as one parameter.

Workers never create tables, so a test's database is migrated first, as a deploy would
migrate it; the ``empty_*`` variants are the ones no upgrade has touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services.databases import (
    create_test_schema,
    drop_test_schema,
    migrate,
    postgresql_unavailable_reason,
    postgresql_url,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


@pytest.fixture(scope="session")
def postgresql_server() -> str:
    """The PostgreSQL server's URL; asked for once per session, skipping when it does not answer."""
    url = postgresql_url()
    reason = postgresql_unavailable_reason(url)
    if reason is not None:
        pytest.skip(
            f"PostgreSQL variant: no server answers at {url} ({reason});"
            " start one or set CATALOG_TEST_POSTGRESQL_URL"
        )
    return url


@pytest.fixture
def empty_postgresql_schema_url(postgresql_server: str) -> Iterator[str]:
    """A URL whose connections use a new, empty schema of their own, dropped after the test."""
    url = create_test_schema(postgresql_server)
    yield url
    drop_test_schema(url)


@pytest.fixture
def postgresql_schema_url(empty_postgresql_schema_url: str) -> str:
    """A schema of the test's own, migrated as `gateway db upgrade` leaves it."""
    migrate(empty_postgresql_schema_url)
    return empty_postgresql_schema_url


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite catalog as `gateway db upgrade` leaves it: migrated once, copied per test."""
    path = tmp_path_factory.mktemp("catalog-template") / "catalog.sqlite3"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A migrated SQLite catalog of the test's own."""
    database = tmp_path / "catalog.sqlite3"
    # The engine closed cleanly, so the write-ahead log was checkpointed into the file.
    assert not Path(f"{migrated_sqlite_template}-wal").exists()
    shutil.copyfile(migrated_sqlite_template, database)
    return f"sqlite+aiosqlite:///{database}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet: no schema."""
    return f"sqlite+aiosqlite:///{tmp_path}/empty.sqlite3"


@pytest.fixture(params=[SQLITE, POSTGRESQL])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses the catalog runs on both stores."""
    fixture = "sqlite_url" if request.param == SQLITE else "postgresql_schema_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(params=[SQLITE, POSTGRESQL])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A database without the catalog's schema, on each store."""
    fixture = "empty_sqlite_url" if request.param == SQLITE else "empty_postgresql_schema_url"
    url: str = request.getfixturevalue(fixture)
    return url
