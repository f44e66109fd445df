"""Everything the servers share for one run: a folder, the catalog databases, certificates, logging.

Servers run in the workspace folder (so a developer's ``.env`` stays out) with the
environment built here: this one less any ``GATEWAY_*`` variable, plus the run's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.logs import logging_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GATEWAY_COMMAND = str(Path(sys.executable).parent / "gateway")
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_SCHEMA = "gateway_bench"
CLIENT_NAME = "bench"
# How long a `gateway` command of the set-up (migrate, issue certificates) may take.
COMMAND_TIMEOUT = 60
_SINK_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path


@dataclass(frozen=True)
class Workspace:
    directory: Path
    sqlite_url: str
    postgres_url: str | None
    logging_config: Path
    certificates: Certificates
    # The OTLP sink of the tracing rows, started by the first row that asks for it.
    sinks: list[tuple[subprocess.Popen[bytes], str]] = field(default_factory=list)

    def otlp_sink_url(self) -> str:
        """The endpoint of a process that accepts OTLP/HTTP exports and discards them."""
        if not self.sinks:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.otlp_sink", str(port)], cwd=PROJECT_ROOT, start_new_session=True
            )
            self.sinks.append((process, f"http://127.0.0.1:{port}"))
            _wait_for_port(port, process)
        return self.sinks[0][1]

    def environment(self, database_url: str | None = None, **settings: str) -> dict[str, str]:
        """The servers' environment; ``settings`` are GATEWAY_* values without the prefix."""
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("GATEWAY_") and name != "PROMETHEUS_MULTIPROC_DIR"
        }
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        environment["GATEWAY_DATABASE_URL"] = database_url or self.sqlite_url
        environment.update({f"GATEWAY_{name.upper()}": value for name, value in settings.items()})
        return environment


def prepare_workspace(directory: Path, postgres_url: str | None) -> Workspace:
    directory.mkdir(parents=True, exist_ok=True)
    logging_file = directory / "logging.json"
    # The gateway's own JSON logging, as `gateway dev` and `gateway serve` configure it.
    logging_file.write_text(json.dumps(logging_config("info")))
    workspace = Workspace(
        directory=directory,
        sqlite_url=f"sqlite+aiosqlite:///{directory / 'catalog.sqlite3'}",
        postgres_url=_fresh_postgres_schema(postgres_url) if postgres_url else None,
        logging_config=logging_file,
        certificates=_issue_certificates(directory / "certs"),
    )
    for url in filter(None, [workspace.sqlite_url, workspace.postgres_url]):
        migrate(workspace, url)
    return workspace


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _SINK_START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the OTLP sink did not listen on port {port}")


def remove_workspace(workspace: Workspace) -> None:
    for process, _url in workspace.sinks:
        process.terminate()
        process.wait(COMMAND_TIMEOUT)
    if workspace.postgres_url:
        _run_postgres(
            workspace.postgres_url.split("?")[0], f"DROP SCHEMA IF EXISTS {POSTGRES_SCHEMA} CASCADE"
        )
    shutil.rmtree(workspace.directory, ignore_errors=True)


def migrate(workspace: Workspace, database_url: str) -> None:
    """Bring the schema up to date with `gateway db upgrade`, where the command exists;
    older stores create their tables when they open."""
    environment = workspace.environment(database_url)
    probe = subprocess.run(
        [GATEWAY_COMMAND, "db", "--help"],
        env=environment,
        cwd=workspace.directory,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
    )
    if probe.returncode == 0:
        upgrade = subprocess.run(
            [GATEWAY_COMMAND, "db", "upgrade"],
            env=environment,
            cwd=workspace.directory,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
        if upgrade.returncode != 0:
            raise RuntimeError(f"gateway db upgrade failed:\n{upgrade.stdout!r}\n{upgrade.stderr!r}")


def postgres_reachable(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def _fresh_postgres_schema(url: str) -> str:
    _run_postgres(url, f"DROP SCHEMA IF EXISTS {POSTGRES_SCHEMA} CASCADE", f"CREATE SCHEMA {POSTGRES_SCHEMA}")
    return f"{url}?search_path={POSTGRES_SCHEMA}"


def _run_postgres(url: str, *statements: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def _issue_certificates(directory: Path) -> Certificates:
    for arguments in (["init"], ["issue", CLIENT_NAME]):
        subprocess.run(
            [GATEWAY_COMMAND, "certs", *arguments, "--dir", str(directory)],
            check=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
    return Certificates(
        ca=directory / "ca.pem",
        server=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client=directory / f"{CLIENT_NAME}.pem",
        client_key=directory / f"{CLIENT_NAME}-key.pem",
    )
