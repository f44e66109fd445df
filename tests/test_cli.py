"""The ``gateway`` command, run as a user runs it: a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.serving.group_settings import GROUP_APP
from tests.servers import LOOPBACK, port_in_use, run_gateway


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


# Operator mistakes: one line per problem naming the flag or variable, exit status 2, no
# traceback, and nothing started: no banner, no migration (the default SQLite file is absent).
BANNER = "versions at"
BROKEN_JSON = '[{"prefix": "/v3"} {"prefix": "/v4"}]'
JSON_REFUSAL = (
    "gateway: GATEWAY_VERSIONS: not valid JSON (Expecting ',' delimiter: line 1 column 20); "
    'it takes a JSON list such as [{"prefix": "/v3", "factory": "services.v3:create_app"}]'
)
# RFC 5737's documentation range: never an address of the test machine.
FOREIGN_ADDRESS = "192.0.2.1"


def _assert_refused(result: subprocess.CompletedProcess[str], *lines: str, cwd: Path) -> None:
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == list(lines), result.stderr
    assert BANNER not in result.stderr
    assert not (cwd / "var").exists(), "the catalog was migrated before the refusal"


@pytest.mark.parametrize("command", ["config", "serve", "dev"])
def test_invalid_json_in_a_variable_is_named_before_anything_starts(command: str, tmp_path: Path) -> None:
    result = _run(command, env=_environment(GATEWAY_VERSIONS=BROKEN_JSON), cwd=tmp_path)
    _assert_refused(result, JSON_REFUSAL, cwd=tmp_path)


def test_invalid_json_in_dotenv_or_a_secret_file_is_named_as_its_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"GATEWAY_VERSIONS='{BROKEN_JSON}'\n")
    from_dotenv = _run("config", env=_environment(), cwd=tmp_path)
    (tmp_path / ".env").unlink()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "GATEWAY_VERSIONS").write_text(BROKEN_JSON)
    from_secret = _run("config", env=_environment(GATEWAY_SECRETS_DIR=str(secrets)), cwd=tmp_path)
    _assert_refused(from_dotenv, JSON_REFUSAL, cwd=tmp_path)
    _assert_refused(from_secret, JSON_REFUSAL, cwd=tmp_path)


def test_a_secrets_directory_that_is_not_there_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    result = _run("config", env=_environment(GATEWAY_SECRETS_DIR=str(missing)), cwd=tmp_path)
    _assert_refused(
        result,
        f"gateway: GATEWAY_SECRETS_DIR={missing} is not a directory: name the directory holding one "
        "file per setting (e.g. /run/secrets), or unset it",
        cwd=tmp_path,
    )


def test_a_dotenv_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"GATEWAY_LOG_LEVEL=debug\xff\n")
    result = _run("serve", env=_environment(), cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"gateway: .env in {tmp_path} cannot be read: 'utf-8' codec"), (
        result.stderr
    )
    assert len(result.stderr.splitlines()) == 1
    assert BANNER not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (("serve", "--port", "99999"), "gateway: --port 99999: Input should be less than or equal to 65535"),
        (("dev", "--port", "99999"), "gateway: --port 99999: Input should be less than or equal to 65535"),
        (("serve", "--workers", "0"), "gateway: --workers 0: Input should be greater than or equal to 1"),
    ],
)
def test_flags_are_checked_like_the_variables_they_stand_for(
    arguments: tuple[str, ...], refusal: str, tmp_path: Path
) -> None:
    result = _run(*arguments, env=_environment(), cwd=tmp_path)
    _assert_refused(result, refusal, cwd=tmp_path)


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_a_port_in_use_is_refused_with_how_to_pick_another(command: str, tmp_path: Path) -> None:
    with port_in_use() as port:
        result = _run(command, "--host", LOOPBACK, "--port", str(port), env=_environment(), cwd=tmp_path)
    _assert_refused(
        result,
        f"gateway: {LOOPBACK}:{port} is in use by another process; stop it, or pick another port "
        "with --port or GATEWAY_PORT (0: any free port)",
        cwd=tmp_path,
    )


def test_a_metrics_port_in_use_is_refused(tmp_path: Path) -> None:
    with port_in_use() as port:
        result = _run("serve", "--port", "0", env=_environment(GATEWAY_METRICS_PORT=str(port)), cwd=tmp_path)
    _assert_refused(
        result,
        f"gateway: {LOOPBACK}:{port} is in use by another process; stop it, or pick another port "
        "with GATEWAY_METRICS_PORT",
        cwd=tmp_path,
    )


def test_an_address_of_another_machine_is_refused(tmp_path: Path) -> None:
    result = _run("serve", env=_environment(GATEWAY_HOST=FOREIGN_ADDRESS), cwd=tmp_path)
    _assert_refused(
        result,
        f"gateway: {FOREIGN_ADDRESS} is not an address of this machine; set --host or GATEWAY_HOST to "
        "one of its addresses (127.0.0.1: this machine only, 0.0.0.0: all)",
        cwd=tmp_path,
    )


def test_gunicorn_run_by_hand_names_an_invalid_variable_too(tmp_path: Path) -> None:
    # `gunicorn -c gunicorn.conf.py` reads the settings in Gunicorn's arbiter, without the CLI.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:gateway.serving.gunicorn_conf",
            GROUP_APP,
        ],
        env=_environment(GATEWAY_VERSIONS=BROKEN_JSON),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    _assert_refused(result, JSON_REFUSAL, cwd=tmp_path)


def test_an_otlp_protocol_the_gateway_cannot_export_is_refused(tmp_path: Path) -> None:
    variables = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    result = _run("serve", env=_environment(**variables), cwd=tmp_path)
    _assert_refused(
        result,
        "gateway: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the gateway exports traces over http/protobuf only; "
        "set it to http/protobuf and point the endpoint at the collector's OTLP/HTTP port (4318)",
        cwd=tmp_path,
    )
