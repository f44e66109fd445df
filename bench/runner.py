"""One run: start the servers, seed the catalog, warm every row up, then measure the rows
round after round, interleaved, so that a noisy minute touches every row alike."""

from __future__ import annotations

import http.client
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from bench.load import LoadFailedError, run_load
from bench.plan import ITEM_ID, NEW_ITEM, SERVERS, build_rows
from bench.report import RowResult, ServerResult
from bench.servers import LOOPBACK, ServerFailedError, client_ssl_context, start_server, stop_server
from bench.tools import autocannon_command, require_tools
from bench.workspace import (
    PROJECT_ROOT,
    postgres_reachable,
    prepare_workspace,
    remove_workspace,
)

if TYPE_CHECKING:
    from bench.plan import Row
    from bench.servers import RunningServer
    from bench.workspace import Workspace

SEED_ITEMS = 100
PACKAGES = [
    "uvicorn", "gunicorn", "uvicorn-worker", "starlette", "fastapi", "pydantic", "uvloop", "httptools",
    "granian", "zttp", "sqlalchemy", "aiosqlite", "asyncpg", "prometheus-client",
]  # fmt: skip
# Servers whose every row compares other stacks with the gateway, not the gateway itself.
_NOT_GATEWAY = {
    "floor", "starlette", "fastapi", "mounted", "naive-hello", "naive", "v2", "v2-pg",
    "driver-aiosqlite", "driver-sqlite3", "driver-pg",
}  # fmt: skip


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup_seconds: float
    rounds: int
    server_cpus: str
    load_cpus: str
    postgres_url: str | None
    only: re.Pattern[str] | None
    keep_workspace: bool


@dataclass
class Report:
    options: Options
    command: str
    results: dict[str, RowResult]
    servers: list[ServerResult]
    machine: dict[str, str] = field(default_factory=dict)


def run(options: Options, command: str) -> Report:
    require_tools()
    machine = describe_machine(options)
    postgres_url = (
        options.postgres_url if options.postgres_url and postgres_reachable(options.postgres_url) else None
    )
    workspace = prepare_workspace(Path(tempfile.mkdtemp(prefix="gateway-bench-")), postgres_url)
    _progress(f"workspace {workspace.directory}")
    running: dict[str, RunningServer] = {}
    server_results: list[ServerResult] = []
    try:
        rows = [row for row in build_rows("") if options.only is None or options.only.search(row.key)]
        for name in dict.fromkeys(row.server for row in rows):
            server_results.append(_start(name, workspace, options, postgres_url, running))
        etag = _seed(running, workspace)
        rows = [row for row in build_rows(etag) if options.only is None or options.only.search(row.key)]
        results = {row.key: RowResult(row) for row in rows}
        for row in rows:
            if row.server not in running:
                results[row.key].skipped = _skip_reason(server_results, row.server)
        live = [row for row in rows if row.server in running]
        for row in live:
            _measure(row, running[row.server], workspace, options, options.warmup_seconds, None)
        for server in running.values():
            server.measure_memory()
        for round_index in range(options.rounds):
            # Rotated each round, so that no row always runs first after a pause.
            shift = round_index % max(len(live), 1)
            for row in live[shift:] + live[:shift]:
                if results[row.key].skipped is not None:
                    continue
                _progress(
                    f"round {round_index + 1}/{options.rounds} {row.key} {row.stack}: {row.request.describe()}"
                )
                _measure(row, running[row.server], workspace, options, options.seconds, results[row.key])
        machine["load after"] = _load_average()
        server_results = [_with_memory(result, running) for result in server_results]
        return Report(options, command, results, server_results, machine)
    finally:
        for server in running.values():
            stop_server(server)
        if not options.keep_workspace:
            remove_workspace(workspace)


def _start(
    name: str,
    workspace: Workspace,
    options: Options,
    postgres_url: str | None,
    running: dict[str, RunningServer],
) -> ServerResult:
    spec = SERVERS[name]
    is_gateway = name not in _NOT_GATEWAY
    if name.endswith("-pg") and postgres_url is None:
        return ServerResult(
            name, spec.description, None, [], spec.ready_path, "no PostgreSQL reachable", is_gateway
        )
    _progress(f"starting {name}: {spec.description}")
    try:
        server = start_server(spec, workspace, cpus=options.server_cpus)
    except ServerFailedError as error:
        reason = str(error).splitlines()
        _progress(f"{name} did not start:\n{error}")
        return ServerResult(
            name, spec.description, None, [], spec.ready_path, _last_error_line(reason), is_gateway
        )
    running[name] = server
    return ServerResult(name, spec.description, server.ready_seconds, [], spec.ready_path, None, is_gateway)


def _with_memory(result: ServerResult, running: dict[str, RunningServer]) -> ServerResult:
    server = running.get(result.name)
    if server is None:
        return result
    return ServerResult(
        result.name,
        result.description,
        result.ready_seconds,
        server.rss_megabytes,
        result.ready_path,
        None,
        result.is_gateway,
    )


def _measure(
    row: Row,
    server: RunningServer,
    workspace: Workspace,
    options: Options,
    seconds: float,
    result: RowResult | None,
) -> None:
    certificates = workspace.certificates
    try:
        server.check_alive()
        outcome = run_load(
            row.tool,
            server.base_url,
            row.request,
            seconds=seconds,
            cpus=options.load_cpus,
            new_connection_per_request=row.new_connection_per_request,
            certificate=(certificates.client, certificates.client_key)
            if server.spec.client_certificate
            else None,
            ca_file=certificates.ca if server.spec.tls else None,
        )
    except (LoadFailedError, ServerFailedError, subprocess.TimeoutExpired) as error:
        if result is not None:
            result.skipped = _last_error_line(str(error).splitlines())
        _progress(f"{row.key} failed: {error}")
        return
    finally:
        server.trim_log()
    if result is not None:
        result.runs.append(outcome)
        _progress(
            f"    {outcome.requests_per_second:,.0f} req/s, p50 {outcome.p50_ms:.2f} ms, p99 {outcome.p99_ms:.2f} ms, errors {outcome.errors}"
        )


def _seed(running: dict[str, RunningServer], workspace: Workspace) -> str:
    """SEED_ITEMS items in each catalog; returns item 1's ETag (the same on every store)."""
    etag = ""
    for store in ("", "-pg"):
        candidates = [(f"v2{store}", ""), (f"gateway{store}", "/v2"), ("naive", "/v2"), ("serve-1", "/v2")]
        server, prefix = next(
            ((running[name], prefix) for name, prefix in candidates if name in running), (None, "")
        )
        if server is None:
            continue
        for _ in range(SEED_ITEMS):
            status, _body, _etag = _request(server, workspace, "POST", f"{prefix}/items", NEW_ITEM)
            if status != 201:
                raise RuntimeError(f"seeding {server.spec.name} failed: {status} {_body[:300]!r}")
        status, _body, etag = _request(server, workspace, "GET", f"{prefix}/items/{ITEM_ID}", None)
    return etag


def _request(
    server: RunningServer, workspace: Workspace, method: str, path: str, body: str | None
) -> tuple[int, bytes, str]:
    connection: http.client.HTTPConnection
    if server.spec.tls:
        context = client_ssl_context(workspace, client_certificate=server.spec.client_certificate)
        connection = http.client.HTTPSConnection(LOOPBACK, server.port, timeout=10, context=context)
    else:
        connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read(), response.headers.get("ETag", "")
    finally:
        connection.close()


def describe_machine(options: Options) -> dict[str, str]:
    cpu_models = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.release()}, {len(cpu_models)} x {cpu_models[0] if cpu_models else '?'}",
        "memory": _first_line("/proc/meminfo"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(versions),
        "load generators": f"{_tool_version(['wrk', '-v'])}; autocannon {_tool_version([*autocannon_command(), '--version'])}; node {_tool_version(['node', '--version'])}",
        "cores": f"servers on CPU {options.server_cpus}, load generator on CPU {options.load_cpus} (taskset)",
        "commit": _tool_version(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"])
        + (
            " (with uncommitted changes)"
            if _tool_version(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"])
            else ""
        ),
        "load before": _load_average(),
    }


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _first_line(path: str) -> str:
    return " ".join(Path(path).read_text().splitlines()[0].split()[1:])


def _tool_version(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    output = (completed.stdout or completed.stderr).strip()
    return output.splitlines()[0] if output else ""


def _skip_reason(servers: list[ServerResult], name: str) -> str:
    return next((server.skipped or "" for server in servers if server.name == name), "not started")


def _last_error_line(lines: list[str]) -> str:
    meaningful = [line.strip() for line in lines if line.strip()]
    errors = [line for line in meaningful if "Error" in line or "error" in line]
    return (errors or meaningful or ["unknown"])[-1][:200]


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
