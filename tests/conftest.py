from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.settings import ENV_PREFIX, SECRETS_DIR_VARIABLE, Settings
from gateway.tracing.server import ServerTracing
from gateway.versions import VersionEntry, default_registry
from services.catalog.settings import CatalogSettings

# The catalog databases (sqlite_url, database_url, ...) every package's tests may ask for.
pytest_plugins = ["tests.database_fixtures"]

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)
PROBE_FACTORY = "tests.versions.probe:create_app"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def probe_version(prefix: str = "/v3", factory: str = PROBE_FACTORY, **lifecycle: Any) -> VersionEntry:
    return VersionEntry(prefix=prefix, factory=factory, **lifecycle)


def catalog_versions() -> list[VersionEntry]:
    """v1 and v2 as shipped, but with a sunset that no test run will reach."""
    return [
        entry.model_copy(update={"sunset_at": FAR_FUTURE}) if entry.sunset_at is not None else entry
        for entry in default_registry()
    ]


def gateway_settings(**values: Any) -> Settings:
    """Settings as a test gives them: the catalog's keys (``database_url``, ...) go to its
    section, which the settings carry as ``gateway serve`` hands them on; no .env is read."""
    catalog = {name: values.pop(name) for name in list(values) if name in CatalogSettings.model_fields}
    # _env_file=None: a developer's .env never leaks into a test.
    return Settings(_env_file=None, **values).with_app_settings(CatalogSettings(_env_file=None, **catalog))


def is_setting_variable(name: str) -> bool:
    """Whether a process reads variable ``name``: a setting of the gateway or of the catalog,
    or GATEWAY_SECRETS_DIR (where settings are read from; none itself)."""
    field = name.removeprefix(ENV_PREFIX).lower()
    return (
        name == SECRETS_DIR_VARIABLE
        or field in Settings.model_fields
        or field in CatalogSettings.model_fields
    )


def catalog_of(settings: Settings) -> CatalogSettings:
    catalog = settings.app_settings(CatalogSettings)
    assert catalog is not None, "these settings carry no catalog section"
    return catalog


@pytest.fixture
def make_settings(sqlite_url: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": sqlite_url,
            "versions": [probe_version()],
            # Most tests need no catalog; those of /internal ask for it.
            "internal_app": None,
        }
        values.update(overrides)
        return gateway_settings(**values)

    return build


async def open_client(
    settings: Settings, root_path: str = "", *, tracing: ServerTracing | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, tracing=tracing)
    # asgi-lifespan runs the root's lifespan as a server would, so start-up and shutdown
    # are part of every test. Starlette's TestClient is avoided on purpose: under
    # Starlette 1.x it warns that plain httpx is deprecated, and the gateway's
    # client library is plain httpx.
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async for opened in open_client(make_settings()):
        yield opened
