"""The catalog when its database is unreachable, locked or slow: 503 with Retry-After, then recovery."""

from __future__ import annotations

import inspect
import sqlite3
import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.health import readiness_checks_of
from gateway.settings import Settings
from services import v1, v2
from services.catalog import CatalogUnavailableError, get_store
from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.settings import CatalogSettings
from tests.conftest import catalog_versions, open_client
from tests.services.databases import TcpProxy, closed_port
from tests.services.utils import serve

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

pytestmark = pytest.mark.anyio

TEAPOT = {"name": "Teapot", "price": {"amount": "1"}}


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The catalog's database is unavailable; retry later."


async def test_a_dead_postgresql_gives_503_at_once_and_fails_readiness(
    make_settings: Callable[..., Settings],
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test"
    settings = make_settings(versions=catalog_versions(), database_url=url, database_timeout=1)
    # The gateway starts: a database that is down is a reason to be unready, not to crash.
    async for gateway in open_client(settings):
        started = time.monotonic()
        responses = [
            await gateway.get("/v2/items"),
            await gateway.post("/v2/items", json=TEAPOT, headers={"Idempotency-Key": "k"}),
            await gateway.patch("/v2/items/1", json={"name": "x"}),
            await gateway.get("/v1/items/1"),
            await gateway.delete("/v1/items/1"),
        ]
        elapsed = time.monotonic() - started
        ready = await gateway.get("/health/ready")

        for response in responses:
            assert_unavailable(response)
            assert response.json()["status"] == 503
            assert response.json()["instance"] == response.request.url.path
        assert elapsed < 2
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert {check[0]["status"] for check in checks.values()} == {"fail"}
        assert "ConnectionRefusedError" in checks["v2:catalog-store"][0]["output"]


# Either bound may be the shorter: the busy timeout, or the call's, which caps it.
@pytest.mark.parametrize(("busy_timeout", "call_timeout"), [(0.2, 5), (5, 0.3)])
async def test_a_locked_sqlite_database_gives_503_within_the_timeout(
    sqlite_url: str, busy_timeout: float, call_timeout: float
) -> None:
    settings = CatalogSettings(
        _env_file=None,
        database_url=sqlite_url,
        database_busy_timeout=busy_timeout,
        database_timeout=call_timeout,
    )
    async with serve(v2.create_app(settings)) as client:
        item = (await client.post("/items", json=TEAPOT)).json()
        # Another process holds the write lock, and keeps it past the busy timeout.
        blocker = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            created = await client.post("/items", json=TEAPOT)
            patched = await client.patch(f"/items/{item['id']}", json={"name": "x"})
            elapsed = time.monotonic() - started
            # WAL: readers are not held up by the writer.
            read = await client.get(f"/items/{item['id']}")
        finally:
            blocker.rollback()
            blocker.close()
        after = await client.post("/items", json=TEAPOT)

    assert_unavailable(created)
    assert_unavailable(patched)
    assert elapsed < 2 * min(busy_timeout, call_timeout) + 1
    assert read.status_code == 200
    assert after.status_code == 201


async def test_a_slow_postgresql_gives_503_within_the_timeout(postgresql_schema_url: str) -> None:
    settings = CatalogSettings(_env_file=None, database_url=postgresql_schema_url, database_timeout=0.5)
    async with serve(v1.create_app(settings)) as client:
        item = (await client.post("/items", json={"name": "Teapot", "price": 1})).json()
        # Another client holds the item's row lock: the update waits for it past the timeout.
        other = create_catalog_engine(postgresql_schema_url, busy_timeout=5)
        try:
            async with writer_of(other).begin() as connection:
                await connection.execute(
                    text("SELECT id FROM items WHERE id = :id FOR UPDATE"), {"id": item["id"]}
                )
                started = time.monotonic()
                replaced = await client.put(f"/items/{item['id']}", json={"name": "Kettle", "price": 2})
                elapsed = time.monotonic() - started
        finally:
            await other.dispose()
        # The connection that timed out is usable again, or replaced.
        after = [
            await client.put(f"/items/{item['id']}", json={"name": "Kettle", "price": 2}) for _ in range(3)
        ]

    assert_unavailable(replaced)
    assert 0.5 <= elapsed < 2
    assert [response.status_code for response in after] == [200] * 3


async def test_the_store_recovers_by_itself_when_postgresql_comes_back(postgresql_schema_url: str) -> None:
    url = make_url(postgresql_schema_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    app = v2.create_app(CatalogSettings(_env_file=None, database_url=proxied, database_timeout=1))
    [readiness] = readiness_checks_of(app)
    try:
        async with serve(app) as client:
            item = (await client.post("/items", json=TEAPOT)).json()

            await proxy.stop()  # A restart, a failover, a partition.
            started = time.monotonic()
            down = await client.get(f"/items/{item['id']}")
            elapsed = time.monotonic() - started
            with pytest.raises(CatalogUnavailableError):
                await readiness.probe()

            await proxy.start()
            await readiness.probe()
            back = await client.get(f"/items/{item['id']}")
    finally:
        await proxy.stop()

    assert_unavailable(down)
    assert elapsed < 2
    assert back.status_code == 200
    assert back.json()["name"] == "Teapot"


async def test_a_store_that_started_without_postgresql_serves_once_it_is_up(
    postgresql_schema_url: str,
) -> None:
    url = make_url(postgresql_schema_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    await proxy.stop()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        async with serve(
            v2.create_app(CatalogSettings(_env_file=None, database_url=proxied, database_timeout=1))
        ) as client:
            down = await client.post("/items", json=TEAPOT)
            await proxy.start()
            # The first call that reaches the database finds its schema current.
            up = await client.post("/items", json=TEAPOT)
    finally:
        await proxy.stop()

    assert_unavailable(down)
    assert up.status_code == 201


def test_the_store_dependency_runs_on_the_event_loop() -> None:
    # FastAPI runs a plain ``def`` dependency in its thread pool: a hop to another thread
    # and back on every request.
    assert inspect.iscoroutinefunction(get_store)
