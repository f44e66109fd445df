"""Settings and clients of the version apps over ``database_url`` (``tests/database_fixtures.py``):
every catalog test runs on both stores."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import pytest

from gateway.registry import build_mounted_app
from gateway.settings import INTERNAL_FACTORY, Settings
from gateway.versions import default_registry
from services import v1, v2
from services.catalog.settings import CatalogSettings
from tests.services.utils import serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx


@pytest.fixture
def settings(database_url: str) -> CatalogSettings:
    # _env_file=None: a developer's .env never leaks into a test.
    return CatalogSettings(_env_file=None, database_url=database_url)


@pytest.fixture
async def v1_client(settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(v1.create_app(settings)) as client:
        yield client


@pytest.fixture
async def v2_client(settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(v2.create_app(settings)) as client:
        yield client


@pytest.fixture
async def internal_client(settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    # Prepared as the gateway mounts it: its errors in the gateway's problem shape.
    async with serve(build_mounted_app(INTERNAL_FACTORY, _carrying(settings))) as client:
        yield client


@pytest.fixture
async def mounted_clients(settings: CatalogSettings) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """v1, v2 and /internal over one database, each prepared as the gateway mounts it (its
    errors in the problem shape, its schema documenting them), by name: "v1", "v2", "internal"."""
    factories = {entry.prefix.lstrip("/"): entry.factory for entry in default_registry()}
    factories["internal"] = INTERNAL_FACTORY
    async with AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(serve(build_mounted_app(factory, _carrying(settings))))
            for name, factory in factories.items()
        }


def _carrying(catalog: CatalogSettings) -> Settings:
    # What the gateway hands a mounted catalog app: its settings carrying the catalog's section.
    return Settings(_env_file=None).with_app_settings(catalog)
