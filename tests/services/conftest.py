"""Settings and clients of the version apps over ``database_url`` (``tests/database_fixtures.py``):
every catalog test runs on both stores."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.settings import Settings
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
