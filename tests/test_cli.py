"""The ``gateway`` command, run as a user runs it: a real process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.servers import run_gateway


def _run(*arguments: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_gateway(arguments, env=env, cwd=cwd, timeout=30)


def _environment(**variables: str) -> dict[str, str]:
    # The child gets its own copy; the test process's environment is never changed.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    environment.update(variables)
    return environment


def test_config_prints_effective_settings_with_secrets_redacted(tmp_path: Path) -> None:
    result = _run(
        "config",
        env=_environment(
            GATEWAY_DATABASE_URL="postgresql+asyncpg://app:hunter2@db/catalog", GATEWAY_PORT="9000"
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["port"] == 9000
    assert printed["database_url"] == "postgresql+asyncpg://app:***@db/catalog"
    assert "hunter2" not in result.stdout


def test_an_invalid_variable_stops_the_start_and_is_named(tmp_path: Path) -> None:
    result = _run("serve", env=_environment(GATEWAY_MAX_BODY_SIZE="lots"), cwd=tmp_path)
    assert result.returncode == 2
    assert "GATEWAY_MAX_BODY_SIZE: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_come_from_a_dotenv_file_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GATEWAY_LOG_LEVEL=debug\n")
    result = _run("config", env=_environment(), cwd=tmp_path)
    assert json.loads(result.stdout)["log_level"] == "debug"
