"""Each mounted app's settings section: read beside the gateway's, from the same sources, only
for the apps mounted, handed to their factories; a .env key nobody reads is refused."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest
from asgi_lifespan import LifespanManager

from gateway.extensions import load_group_settings
from gateway.registry import build_mounted_app
from gateway.settings import InvalidSettingsError
from services.catalog.settings import CatalogSettings
from tests.conftest import PROBE_FACTORY, gateway_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
CATALOG_URL = "sqlite+aiosqlite:///from-dotenv.sqlite3"
PLAIN_APP_ONLY = json.dumps([{"prefix": "/v3", "factory": PROBE_FACTORY}])


@pytest.fixture
def working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # .env is read from the working directory; no GATEWAY_* of the developer's may leak in.
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    return tmp_path


def test_the_catalogs_keys_in_dotenv_reach_its_section_not_the_gateways(working_directory: Path) -> None:
    (working_directory / ".env").write_text(f"GATEWAY_DATABASE_URL={CATALOG_URL}\nGATEWAY_PORT=8123\n")
    settings = load_group_settings()
    catalog = settings.app_settings(CatalogSettings)
    assert catalog is not None
    assert (settings.port, catalog.database_url) == (8123, CATALOG_URL)
    assert "database_url" not in type(settings).model_fields


def test_a_dotenv_key_nobody_reads_is_refused_naming_it(working_directory: Path) -> None:
    (working_directory / ".env").write_text("GATEWAY_DATABSE_URL=sqlite:///typo.sqlite3\nOTHER_TOOL=1\n")
    with pytest.raises(InvalidSettingsError) as refused:
        load_group_settings()
    message = str(refused.value)
    assert message.startswith("GATEWAY_DATABSE_URL in "), message
    assert "no setting of the gateway or of its apps" in message
    assert "OTHER_TOOL" not in message


def test_a_catalog_setting_is_checked_only_where_a_catalog_app_is_mounted(working_directory: Path) -> None:
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patched:
        # Invalid for the catalog: refused with the catalog mounted (the default registry)...
        patched.setenv("GATEWAY_DATABASE_TIMEOUT", "-1")
        with pytest.raises(InvalidSettingsError, match="GATEWAY_DATABASE_TIMEOUT"):
            load_group_settings()
        # ...and never read without it.
        patched.setenv("GATEWAY_VERSIONS", PLAIN_APP_ONLY)
        patched.setenv("GATEWAY_INTERNAL_APP", "null")
        settings = load_group_settings()
    assert settings.app_settings(CatalogSettings) is None
    assert not any(key.startswith("database") for key in settings.redacted())


async def test_a_catalog_app_opens_the_store_of_the_section_the_settings_carry(tmp_path: Path) -> None:
    carried = tmp_path / "carried.sqlite3"
    app = build_mounted_app("services.v2:create_app", gateway_settings(database_url=f"sqlite:///{carried}"))
    async with LifespanManager(app):
        assert carried.exists()
