from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.settings import Settings
from services import v1, v2
from tests.services.databases import (
    create_test_schema,
    drop_test_schema,
    postgresql_unavailable_reason,
    postgresql_url,
)
from tests.services.utils import serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    import httpx

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
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/catalog.sqlite3"


@pytest.fixture
def postgresql_schema_url(postgresql_server: str) -> Iterator[str]:
    """A URL whose connections use a new schema of their own, dropped after the test."""
    url = create_test_schema(postgresql_server)
    yield url
    drop_test_schema(url)


@pytest.fixture(params=[SQLITE, POSTGRESQL])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses the catalog runs on both stores."""
    fixture = "sqlite_url" if request.param == SQLITE else "postgresql_schema_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # _env_file=None: a developer's .env never leaks into a test.
    return Settings(_env_file=None, database_url=database_url)


@pytest.fixture
async def v1_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(v1.create_app(settings)) as client:
        yield client


@pytest.fixture
async def v2_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(v2.create_app(settings)) as client:
        yield client
