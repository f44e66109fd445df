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
from tests.services.utils import serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx


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


@pytest.fixture
async def internal_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # Prepared as the gateway mounts it: its errors in the gateway's problem shape.
    async with serve(build_mounted_app(INTERNAL_FACTORY, settings)) as client:
        yield client


@pytest.fixture
async def mounted_clients(settings: Settings) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """v1, v2 and /internal over one database, each prepared as the gateway mounts it (its
    errors in the problem shape, its schema documenting them), by name: "v1", "v2", "internal"."""
    factories = {entry.prefix.lstrip("/"): entry.factory for entry in default_registry()}
    factories["internal"] = INTERNAL_FACTORY
    async with AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(serve(build_mounted_app(factory, settings)))
            for name, factory in factories.items()
        }
