"""A store on a database whose schema is not the code's: 503 saying what to run, never DDL, never a 500."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import inspect, text

from gateway.health import ProbeReport, readiness_checks_of
from services import v2
from services.catalog import CatalogStore
from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.migrate import code_revisions
from services.catalog.schema import (
    HEAD_REVISION,
    REVISIONS,
    SchemaNotCurrentError,
    SchemaState,
    SchemaStatus,
)
from services.catalog.settings import CatalogSettings
from tests.services.databases import migrate
from tests.services.utils import serve

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

pytestmark = pytest.mark.anyio

UPGRADE_ADVICE = "run `gateway db upgrade`"
# The store asks the database again at most this often while the schema is behind.
RECHECK_SECONDS = 1.0


def test_the_code_lists_every_migration_script() -> None:
    # Workers read REVISIONS instead of importing Alembic; a new script must be listed there.
    assert list(REVISIONS) == code_revisions(), (
        f"set REVISIONS in services/catalog/schema.py to {tuple(code_revisions())}"
    )


def test_a_worker_knows_the_schema_without_importing_alembic() -> None:
    # What a worker imports to serve the catalog, in a fresh interpreter.
    script = (
        "import sys; from gateway.app import create_app; from gateway.settings import Settings; "
        "create_app(Settings(_env_file=None)); print(sorted({'alembic', 'mako'} & sys.modules.keys()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result


@pytest.mark.parametrize(
    ("database_revisions", "code_revision", "state", "servable", "advice"),
    [
        ((), HEAD_REVISION, SchemaState.MISSING, False, True),
        ((REVISIONS[0],), "9998", SchemaState.BEHIND, False, True),
        ((HEAD_REVISION,), HEAD_REVISION, SchemaState.CURRENT, True, False),
        (("9999",), HEAD_REVISION, SchemaState.AHEAD, True, False),
    ],
)
def test_a_status_says_whether_the_code_can_serve_the_database(
    database_revisions: tuple[str, ...], code_revision: str, state: SchemaState, servable: bool, advice: bool
) -> None:
    known = tuple(dict.fromkeys([*REVISIONS, code_revision]))
    status = SchemaStatus(database_revisions=database_revisions, code_revisions=known)
    assert status.state is state
    assert status.servable is servable
    assert (UPGRADE_ADVICE in status.describe()) is advice
    assert code_revision in status.describe()


async def _eventually(call: Callable[[], Awaitable[object]]) -> None:
    """Retry ``call`` past the store's recheck interval (bounded)."""
    deadline = time.monotonic() + 5 * RECHECK_SECONDS
    for _attempt in range(100):
        try:
            await call()
            return
        except SchemaNotCurrentError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)
    raise AssertionError("the store never found the upgraded schema")


async def test_a_store_on_an_empty_database_says_what_to_run_and_creates_nothing(
    empty_database_url: str,
) -> None:
    store = await CatalogStore.open(empty_database_url, busy_timeout=5)
    try:
        with pytest.raises(SchemaNotCurrentError, match=f"no catalog schema .*{UPGRADE_ADVICE}"):
            await store.ping()
        with pytest.raises(SchemaNotCurrentError, match=UPGRADE_ADVICE):
            await store.list_items(limit=1)
        engine = create_catalog_engine(empty_database_url, busy_timeout=5)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        finally:
            await engine.dispose()
        assert tables == []  # Workers never run DDL.

        migrate(empty_database_url)
        # No restart: the store finds the schema on a later call.
        await _eventually(store.ping)
        assert await store.list_items(limit=1) == []
        assert store.schema_status == SchemaStatus(database_revisions=(HEAD_REVISION,))
    finally:
        await store.close()


async def test_the_catalog_answers_503_and_is_unready_until_the_upgrade(empty_database_url: str) -> None:
    app = v2.create_app(CatalogSettings(_env_file=None, database_url=empty_database_url))
    [readiness] = readiness_checks_of(app)
    async with serve(app) as client:
        listed = await client.get("/items")
        created = await client.post("/items", json={"name": "Teapot", "price": {"amount": "1"}})
        with pytest.raises(SchemaNotCurrentError, match=UPGRADE_ADVICE):
            await readiness.probe()

        migrate(empty_database_url)
        await _eventually(readiness.probe)
        after = await client.post("/items", json={"name": "Teapot", "price": {"amount": "1"}})

    for response in (listed, created):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.headers["content-type"] == "application/problem+json"
        assert UPGRADE_ADVICE in response.json()["detail"]
    assert after.status_code == 201, after.text


async def test_a_schema_a_newer_release_migrated_is_served_with_a_warning(database_url: str) -> None:
    engine = create_catalog_engine(database_url, busy_timeout=5)
    try:
        async with writer_of(engine).begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()
    app = v2.create_app(CatalogSettings(_env_file=None, database_url=database_url))
    [readiness] = readiness_checks_of(app)
    async with serve(app) as client:
        created = await client.post("/items", json={"name": "Teapot", "price": {"amount": "1"}})
        report = await readiness.probe()

    assert created.status_code == 201, created.text
    assert isinstance(report, ProbeReport)
    assert report.status == "warn"
    assert "9999" in report.output
