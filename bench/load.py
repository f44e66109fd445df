"""Drive a server with wrk or autocannon on the load core, and read back one result."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.tools import autocannon_command

CONNECTIONS = 64
Tool = Literal["wrk", "autocannon", "ab"]
# ab keeps its statistics for up to -n requests in memory: room for this many a second.
_AB_MAX_RATE = 20_000

# wrk reports through this Lua hook: one JSON line, so nothing is scraped from its text.
_WRK_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"status_errors": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


@dataclass(frozen=True)
class Request:
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None

    def describe(self) -> str:
        conditional = " (If-None-Match)" if any(name == "If-None-Match" for name, _ in self.headers) else ""
        return f"{self.method} {self.path}{conditional}"


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


class LoadFailedError(RuntimeError):
    pass


def run_load(
    tool: Tool,
    url: str,
    request: Request,
    *,
    seconds: float,
    cpus: str,
    new_connection_per_request: bool = False,
    certificate: tuple[Path, Path] | None = None,
    ca_file: Path | None = None,
) -> LoadResult:
    if tool == "wrk":
        if new_connection_per_request or certificate is not None:
            raise ValueError("wrk keeps connections alive and cannot present a client certificate")
        return _run_wrk(url, request, seconds=seconds, cpus=cpus)
    if tool == "ab":
        if not new_connection_per_request:
            # ab speaks HTTP/1.0 and keeps a connection only on a "Keep-Alive" response
            # header, which Uvicorn does not send: with ab, every request is a new connection.
            raise ValueError("ab is used for new connections only")
        return _run_ab(url, request, seconds=seconds, cpus=cpus, certificate=certificate)
    if new_connection_per_request:
        # autocannon's --reconnectRate drops the connection before reading the response.
        raise ValueError("autocannon is used for keep-alive connections only")
    return _run_autocannon(url, request, seconds=seconds, cpus=cpus, certificate=certificate, ca_file=ca_file)


def _run_wrk(url: str, request: Request, *, seconds: float, cpus: str) -> LoadResult:
    script = [f"wrk.method = {_lua_string(request.method)}"]
    if request.body is not None:
        script.append(f"wrk.body = {_lua_string(request.body)}")
    script += [f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}" for name, value in request.headers]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script_file:
        script_file.write("\n".join([*script, _WRK_REPORT]))
        script_file.flush()
        command = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s"]
        command += ["-s", script_file.name, url + request.path]
        output = _run(command, seconds)
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            report = json.loads(line.removeprefix("BENCH_RESULT "))
            return LoadResult(
                requests_per_second=report["requests"] / (report["duration_us"] / 1e6),
                p50_ms=report["p50_us"] / 1000,
                p99_ms=report["p99_us"] / 1000,
                requests=report["requests"],
                errors=report["status_errors"] + report["socket_errors"],
            )
    raise LoadFailedError(f"wrk printed no result:\n{output}")


def _run_autocannon(
    url: str,
    request: Request,
    *,
    seconds: float,
    cpus: str,
    certificate: tuple[Path, Path] | None,
    ca_file: Path | None,
) -> LoadResult:
    command = ["taskset", "-c", cpus, *autocannon_command(), "--json", "--connections", str(CONNECTIONS)]
    command += ["--duration", f"{seconds:g}", "--method", request.method]
    command += [argument for name, value in request.headers for argument in ("--headers", f"{name}={value}")]
    if request.body is not None:
        command += ["--body", request.body]
    if certificate is not None:
        command += ["--cert", str(certificate[0]), "--key", str(certificate[1])]
    if ca_file is not None:
        command += ["--ca", str(ca_file)]
    output = _run([*command, url + request.path], seconds)
    report = json.loads(output.strip().splitlines()[-1])
    requests = int(report["requests"]["total"])
    return LoadResult(
        requests_per_second=requests / float(report["duration"]),
        p50_ms=float(report["latency"]["p50"]),
        p99_ms=float(report["latency"]["p99"]),
        requests=requests,
        errors=int(report["non2xx"]) + int(report["errors"]) + int(report["timeouts"]),
    )


def _run_ab(
    url: str, request: Request, *, seconds: float, cpus: str, certificate: tuple[Path, Path] | None
) -> LoadResult:
    if request.method != "GET" or request.body is not None:
        raise ValueError("the bench uses ab for GET only")
    with tempfile.TemporaryDirectory() as folder:
        percentiles = Path(folder) / "percentiles.csv"
        command = [
            "taskset",
            "-c",
            cpus,
            "ab",
            "-q",
            "-c",
            str(CONNECTIONS),
            "-t",
            f"{max(1, round(seconds))}",
        ]
        command += ["-n", str(int(seconds * _AB_MAX_RATE)), "-e", str(percentiles)]
        command += [argument for name, value in request.headers for argument in ("-H", f"{name}: {value}")]
        if certificate is not None:
            # ab takes the certificate and its key in one PEM file.
            combined = Path(folder) / "client.pem"
            combined.write_bytes(certificate[0].read_bytes() + certificate[1].read_bytes())
            command += ["-E", str(combined)]
        output = _run([*command, url + request.path], seconds)
        rows = dict(line.split(",") for line in percentiles.read_text().splitlines()[1:])
    numbers = {
        name.strip(): value.split()[0]
        for name, value in (line.split(":", 1) for line in output.splitlines() if ":" in line)
    }
    requests = int(numbers["Complete requests"])
    return LoadResult(
        requests_per_second=float(numbers["Requests per second"]),
        p50_ms=float(rows["50"]),
        p99_ms=float(rows["99"]),
        requests=requests,
        errors=int(numbers["Failed requests"]) + int(numbers.get("Non-2xx responses", "0")),
    )


def _run(command: list[str], seconds: float) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if completed.returncode != 0:
        raise LoadFailedError(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def _lua_string(value: str) -> str:
    return json.dumps(value)  # A JSON string literal is a valid Lua string literal here (ASCII).
