"""``gateway db`` run as an operator runs it (real processes), and the start-up step of
``gateway serve`` that migrates before workers fork (``prepare_database``, in process)."""

from __future__ import annotations

import logging
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from services.catalog.commands import prepare_database
from services.catalog.schema import HEAD_REVISION
from services.catalog.settings import CatalogSettings
from tests.servers import environment_without_gateway_settings, run_gateway
from tests.services.databases import closed_port, migrate

UPGRADES_AT_ONCE = 3
UPGRADE_ADVICE = "run `gateway db upgrade`"


def _run(cwd: Path, *arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    # The child gets its own copy of the environment, without the caller's GATEWAY_ settings.
    environment = environment_without_gateway_settings()
    environment.update({f"GATEWAY_{name.upper()}": value for name, value in variables.items()})
    return run_gateway(["db", *arguments], env=environment, cwd=cwd)


def _assert_one_readable_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in expected:
        assert text in result.stderr


def test_upgrade_creates_the_default_database_once_and_check_agrees(tmp_path: Path) -> None:
    first = _run(tmp_path, "upgrade")
    second = _run(tmp_path, "upgrade")
    current = _run(tmp_path, "current")
    check = _run(tmp_path, "check")

    assert first.returncode == 0, first.stderr
    # The default URL, relative to the working directory, as `gateway serve` would use it.
    assert first.stdout == (
        f"sqlite+aiosqlite:///var/catalog.sqlite3: upgraded the schema from revision none to {HEAD_REVISION}\n"
    )
    assert (tmp_path / "var" / "catalog.sqlite3").is_file()
    assert second.returncode == 0, second.stderr
    assert second.stdout.endswith(f"nothing to do: the schema is at revision {HEAD_REVISION} (current)\n")
    assert current.stdout == f"database: {HEAD_REVISION} (current)\ncode:     {HEAD_REVISION}\n"
    assert check.returncode == 0, check.stdout
    assert "connections: SQLite" in check.stdout


def test_upgrades_started_at_once_migrate_exactly_once(tmp_path: Path, empty_database_url: str) -> None:
    with ThreadPoolExecutor(UPGRADES_AT_ONCE) as pool:
        results = list(
            pool.map(
                lambda _: _run(tmp_path, "upgrade", database_url=empty_database_url), range(UPGRADES_AT_ONCE)
            )
        )
    for result in results:
        assert result.returncode == 0, result.stderr
    outcomes = sorted(result.stdout.split(": ", 1)[1].split(" ")[0] for result in results)
    assert outcomes == ["nothing"] * (UPGRADES_AT_ONCE - 1) + ["upgraded"], [r.stdout for r in results]


def test_a_plain_scheme_gets_the_catalogs_driver(tmp_path: Path, empty_database_url: str) -> None:
    # postgresql:// and sqlite:// as operators write them, without SQLAlchemy's async driver.
    plain_url = make_url(empty_database_url).set(drivername=make_url(empty_database_url).get_backend_name())
    result = _run(tmp_path, "upgrade", database_url=plain_url.render_as_string(hide_password=False))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{make_url(empty_database_url).render_as_string()}: upgraded the schema")


def test_check_refuses_zero_workers_as_serve_does(tmp_path: Path) -> None:
    result = _run(tmp_path, "check", "--workers", "0")
    assert result.returncode == 2, result
    assert "argument --workers: '0': a worker count is a whole number of at least 1" in result.stderr


def test_check_fails_on_a_schema_behind_and_on_a_budget_over_max_connections(
    tmp_path: Path, empty_postgresql_schema_url: str
) -> None:
    url = empty_postgresql_schema_url
    crowded = _run(tmp_path, "check", "--workers", "4", database_url=url, database_replicas="50")
    migrate(url)
    fitting = _run(tmp_path, "check", "--workers", "2", database_url=url)

    assert crowded.returncode == 1, crowded.stderr
    assert UPGRADE_ADVICE in crowded.stdout
    # 50 x 4 x (5 + 5) + 1: far over PostgreSQL's default of 100.
    assert "= 2001 connections, OVER the server's" in crowded.stdout
    assert fitting.returncode == 0, fitting.stdout
    assert "2 worker(s) x (5 pool + 5 overflow) + 1 for migrations = 21 connections, within" in fitting.stdout
    assert f"revision {HEAD_REVISION}, as the code needs" in fitting.stdout


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://gateway:hunter2@127.0.0.1:{closed_port()}/catalog"
    result = _run(tmp_path, "upgrade", "--timeout", "2", database_url=url)
    _assert_one_readable_line(result, "gateway db: ", "Connect call failed")
    assert "hunter2" not in result.stderr


def test_the_start_migrates_an_embedded_database_before_the_workers(
    empty_sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.database")
    settings = CatalogSettings(_env_file=None, database_url=empty_sqlite_url)
    prepare_database(settings, workers=2)
    prepare_database(settings, workers=2)  # A second start (or a second group) changes nothing.

    messages = [record.getMessage() for record in caplog.records if record.name == "gateway.database"]
    assert [message.split(": ", 1)[1] for message in messages] == [
        f"upgraded the schema from revision none to {HEAD_REVISION}",
        f"nothing to do: the schema is at revision {HEAD_REVISION} (current)",
    ]


def test_without_migrating_the_start_says_the_schema_is_behind(
    empty_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CatalogSettings(
        _env_file=None, database_url=empty_database_url, database_migrate_on_start=False
    )
    prepare_database(settings, workers=2)
    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert UPGRADE_ADVICE in error.getMessage()


def test_the_start_warns_when_the_pools_could_exhaust_postgresql(
    postgresql_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CatalogSettings(_env_file=None, database_url=postgresql_schema_url, database_replicas=40)
    prepare_database(settings, workers=3)
    [warning] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "40 replica(s) x 3 worker(s)" in warning.getMessage()
    assert "GATEWAY_DATABASE_POOL_SIZE" in warning.getMessage()


def test_a_failed_migration_stops_the_start_with_one_line(tmp_path: Path) -> None:
    database = tmp_path / "catalog.sqlite3"
    database.mkdir()  # SQLite cannot open a directory.
    settings = CatalogSettings(_env_file=None, database_url=f"sqlite+aiosqlite:///{database}")
    with pytest.raises(SystemExit) as stopped:
        prepare_database(settings, workers=2)
    message = str(stopped.value.code)
    assert message.startswith(
        f"gateway: migrating the catalog database at sqlite+aiosqlite:///{database} failed: "
    )
    assert "unable to open database file" in message
    assert "\n" not in message


def test_an_unreachable_database_only_warns_when_not_migrating(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+asyncpg://gateway:hunter2@127.0.0.1:{closed_port()}/catalog"
    settings = CatalogSettings(_env_file=None, database_url=url, database_timeout=1)
    prepare_database(settings, workers=2)  # The workers start unready and recover by themselves.
    [warning] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "could not inspect the catalog database" in warning.getMessage()
    assert make_url(url).render_as_string(hide_password=True) in warning.getMessage()
    assert "hunter2" not in warning.getMessage()
