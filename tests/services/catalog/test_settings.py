"""The catalog's settings section: migrate-on-start follows the store, pools are sized
sensibly, only the drivers the catalog runs on, the password redacted, each mistake named by
its variable; and the gateway reads the section beside its own settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import describe_validation_error
from services.catalog.settings import CatalogSettings

SQLITE_URL = "sqlite+aiosqlite:///var/catalog.sqlite3"
POSTGRESQL_URL = "postgresql+asyncpg://gateway@db/catalog"


def _refusal(**settings: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        CatalogSettings(**settings)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("database_url", "setting", "migrates"),
    [
        # A fresh checkout's `gateway serve` must just work on the embedded store.
        (SQLITE_URL, None, True),
        # A shared server is migrated once per deploy, not by every replica's arbiter.
        (POSTGRESQL_URL, None, False),
        (SQLITE_URL, False, False),
        (POSTGRESQL_URL, True, True),
    ],
)
def test_migrating_on_start_defaults_to_the_embedded_store_only(
    database_url: str, setting: bool | None, migrates: bool
) -> None:
    settings = CatalogSettings(_env_file=None, database_url=database_url, database_migrate_on_start=setting)
    assert settings.migrates_database_on_start is migrates


def test_the_pool_defaults_leave_room_on_a_default_postgresql() -> None:
    settings = CatalogSettings(_env_file=None)
    # Three replicas and a rollout's surge pod, two workers each, on max_connections = 100
    # (3 reserved for superusers), with the migration step's connection.
    per_worker = settings.database_pool_size + settings.database_max_overflow
    assert 4 * 2 * per_worker + 1 <= 100 - 3
    assert settings.database_replicas == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("database_pool_size", 0), ("database_max_overflow", -1), ("database_replicas", 0)],
)
def test_impossible_pool_settings_are_refused(field: str, value: int) -> None:
    values: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError, match=field):
        CatalogSettings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://app:p%40ss@db:5432/catalog", "postgresql+asyncpg://app:p%40ss@db:5432/catalog"),
        ("postgres://app@db/catalog?search_path=c", "postgresql+asyncpg://app@db/catalog?search_path=c"),
        ("sqlite:///var/catalog.sqlite3", "sqlite+aiosqlite:///var/catalog.sqlite3"),
        (POSTGRESQL_URL, POSTGRESQL_URL),
        (SQLITE_URL, SQLITE_URL),
    ],
)
def test_a_plain_database_scheme_gets_the_catalogs_driver(given: str, used: str) -> None:
    assert CatalogSettings(_env_file=None, database_url=given).database_url == used


@pytest.mark.parametrize(
    "database_url",
    ["mysql://app@db/catalog", "postgresql+psycopg://app@db/catalog", "sqlite+pysqlite:///catalog.sqlite3"],
)
def test_a_driver_the_catalog_does_not_run_on_is_refused_with_the_accepted_forms(database_url: str) -> None:
    message = _refusal(_env_file=None, database_url=database_url)
    scheme = database_url.split("://")[0]
    assert message.startswith(f"GATEWAY_DATABASE_URL: the catalog cannot use {scheme}://; it takes "), message
    assert "postgresql+asyncpg://" in message
    assert "sqlite+aiosqlite://" in message


def test_config_redacts_the_database_password() -> None:
    settings = CatalogSettings(
        _env_file=None, database_url="postgresql+asyncpg://app:hunter2@db:5432/catalog"
    )
    redacted = settings.redacted()
    assert "hunter2" not in json.dumps(redacted)
    assert redacted["database_url"] == "postgresql+asyncpg://app:***@db:5432/catalog"


def test_a_secrets_directory_supplies_settings(tmp_path: Path) -> None:
    (tmp_path / "gateway_database_url").write_text("sqlite+aiosqlite:///from-secret.sqlite3")
    settings = CatalogSettings(_env_file=None, _secrets_dir=tmp_path)
    assert settings.database_url == "sqlite+aiosqlite:///from-secret.sqlite3"
