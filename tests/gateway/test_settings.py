"""Settings: the catalog database's (migrate-on-start follows the store, pools sized sensibly), the public URL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, describe_validation_error

SQLITE_URL = "sqlite+aiosqlite:///var/catalog.sqlite3"
POSTGRESQL_URL = "postgresql+asyncpg://gateway@db/catalog"


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
    settings = Settings(_env_file=None, database_url=database_url, database_migrate_on_start=setting)
    assert settings.migrates_database_on_start is migrates


def test_the_pool_defaults_leave_room_on_a_default_postgresql() -> None:
    settings = Settings(_env_file=None)
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
        Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("value", "kept"),
    [("https://api.example.com", "https://api.example.com"), ("http://[::1]:8443/", "http://[::1]:8443")],
)
def test_a_public_url_is_an_origin(value: str, kept: str) -> None:
    assert Settings(_env_file=None, public_url=value).public_url == kept


@pytest.mark.parametrize(
    "value",
    [
        "api.example.com",
        "ftp://api.example.com",
        "https://",
        "https://api.example.com:99999",
        "https://api.example.com/api",
        "https://api.example.com?cache=1",
        "https://user@api.example.com",
    ],
)
def test_a_public_url_with_more_than_an_origin_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, public_url=value)
    assert describe_validation_error(refused.value).splitlines()[1].lstrip().startswith("GATEWAY_PUBLIC_URL:")
