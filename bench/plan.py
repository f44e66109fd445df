"""The servers and the rows of the table: what is measured, against what, with which target."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.load import Request, Tool
from bench.servers import LOOPBACK, ServerSpec
from bench.workspace import GATEWAY_COMMAND
from gateway.versions import VersionEntry, default_registry

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.workspace import Workspace

HELLO_VERSION_PREFIX = "/v3"
ITEM_ID = 1
NEW_ITEM = json.dumps({"name": "Teapot", "price": {"amount": "12.50"}, "tags": ["kitchen"]})
_JSON = (("Content-Type", "application/json"),)


@dataclass(frozen=True)
class Target:
    """This row's requests/s must be at least ``minimum`` times row ``baseline``'s."""

    baseline: str
    minimum: float


@dataclass(frozen=True)
class Row:
    key: str
    stack: str
    server: str
    request: Request
    tool: Tool = "wrk"
    new_connection_per_request: bool = False
    # The row whose requests/s the ratio column divides by.
    compare_to: str | None = None
    targets: tuple[Target, ...] = ()


# Every Uvicorn row: the fast implementations the issue measured, and Uvicorn's own
# access log off (the gateway turns it off too and writes its own; the baselines pay for none).
def _uvicorn(
    target: str, *, factory: bool = True, http: str = "httptools", log_config: bool = False
) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        arguments = [sys.executable, "-m", "uvicorn", target, "--host", LOOPBACK, "--port", str(port)]
        arguments += ["--http", http, "--loop", "uvloop", "--no-access-log"]
        return arguments + (["--factory"] if factory else [])

    return command


def _gateway_uvicorn(http: str = "httptools") -> Callable[[int], list[str]]:
    base = _uvicorn("gateway.app:create_app", http=http)

    def command(port: int) -> list[str]:
        # `gateway dev` without the reloader: the gateway's JSON logging, Uvicorn's access log off.
        return [*base(port), "--log-config", "logging.json"]

    return command


def _gateway_serve(workers: int) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [GATEWAY_COMMAND, "serve", "--host", LOOPBACK, "--port", str(port), "--workers", str(workers)]

    return command


def _granian(workers: int) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--loop", "uvloop"]
        granian += ["--host", LOOPBACK, "--port", str(port), "--workers", str(workers), "--no-ws"]
        return [*granian, "--log-config", "logging.json", "--factory", "gateway.app:create_app"]

    return command


def _settings(database: str = "sqlite", **settings: str) -> Callable[[Workspace], dict[str, str]]:
    def environment(workspace: Workspace) -> dict[str, str]:
        url = workspace.postgres_url if database == "postgresql" else workspace.sqlite_url
        return workspace.environment(url, **settings)

    return environment


def _tls(mode: str) -> Callable[[Workspace], dict[str, str]]:
    def environment(workspace: Workspace) -> dict[str, str]:
        certificates = workspace.certificates
        return workspace.environment(
            tls_mode=mode,
            tls_certfile=str(certificates.server),
            tls_keyfile=str(certificates.server_key),
            tls_ca_file=str(certificates.ca),
        )

    return environment


def _traced(sampler: str, ratio: str = "") -> Callable[[Workspace], dict[str, str]]:
    """R4's gateway with tracing on, exporting to a sink that discards (``OTEL_*`` variables)."""

    def environment(workspace: Workspace) -> dict[str, str]:
        variables = workspace.environment(versions=_hello_registry())
        variables.update(
            OTEL_SERVICE_NAME="gateway-bench",
            OTEL_EXPORTER_OTLP_ENDPOINT=workspace.otlp_sink_url(),
            OTEL_TRACES_SAMPLER=sampler,
        )
        if ratio:
            variables["OTEL_TRACES_SAMPLER_ARG"] = ratio
        return variables

    return environment


def _hello_registry() -> str:
    hello = VersionEntry(prefix=HELLO_VERSION_PREFIX, factory="bench.reference_apps:create_hello_version")
    return json.dumps(
        [entry.model_dump(mode="json", exclude_none=True) for entry in [*default_registry(), hello]]
    )


_READY = "/health/ready"
SERVERS = {
    spec.name: spec
    for spec in [
        ServerSpec("floor", "raw ASGI app, Uvicorn", _uvicorn("bench.reference_apps:floor_app", factory=False), _settings(), "/"),
        ServerSpec("starlette", "bare Starlette route, Uvicorn", _uvicorn("bench.reference_apps:create_starlette_hello"), _settings(), "/hello"),
        ServerSpec("fastapi", "bare FastAPI route (pydantic model), Uvicorn", _uvicorn("bench.reference_apps:create_hello_version"), _settings(), "/hello"),
        ServerSpec("mounted", "that FastAPI app under a Starlette Mount, Uvicorn", _uvicorn("bench.reference_apps:create_mounted_hello"), _settings(), "/v3/hello"),
        ServerSpec("naive-hello", "naive gateway over that FastAPI app, Uvicorn", _uvicorn("bench.reference_apps:create_naive_hello"), _settings(), "/v3/hello"),
        ServerSpec("naive", "naive gateway: Mount + one BaseHTTPMiddleware, Uvicorn", _uvicorn("bench.apps:create_naive_gateway"), _settings(), "/v2/items?limit=1"),
        ServerSpec("v2", "v2 app alone (its factory), Uvicorn", _uvicorn("bench.apps:create_v2_alone"), _settings(), "/items?limit=1"),
        ServerSpec("gateway", "gateway, defaults, Uvicorn", _gateway_uvicorn(), _settings(), _READY),
        ServerSpec("gateway-hello", "gateway + the FastAPI route as version /v3, Uvicorn", _gateway_uvicorn(), _settings(versions=_hello_registry()), _READY),
        ServerSpec("gateway-hello-nolog", "that gateway, access log off", _gateway_uvicorn(), _settings(versions=_hello_registry(), access_log="false"), _READY),
        ServerSpec("gateway-hello-nousage", "that gateway, usage accounting off", _gateway_uvicorn(), _settings(versions=_hello_registry(), usage="false"), _READY),
        ServerSpec("gateway-hello-bare", "that gateway, access log and metrics off", _gateway_uvicorn(), _settings(versions=_hello_registry(), access_log="false", metrics_enabled="false"), _READY),
        ServerSpec("gateway-hello-traced", "that gateway, tracing on, every request sampled", _gateway_uvicorn(), _traced("parentbased_always_on"), _READY),
        ServerSpec("gateway-hello-traced-10", "that gateway, tracing on, 10% of requests sampled", _gateway_uvicorn(), _traced("parentbased_traceidratio", "0.1"), _READY),
        ServerSpec("gateway-zttp", "gateway, Uvicorn --http zttp", _gateway_uvicorn(http="zttp"), _settings(), _READY),
        ServerSpec("serve-1", "gateway serve: Gunicorn + GatewayWorker, 1 worker", _gateway_serve(1), _settings(), _READY),
        ServerSpec("serve-2", "gateway serve: Gunicorn + GatewayWorker, 2 workers", _gateway_serve(2), _settings(), _READY),
        ServerSpec("asgi-1", "Gunicorn 27 -k asgi, 1 worker", _gateway_serve(1), _settings(worker_class="asgi"), _READY),
        ServerSpec("asgi-2", "Gunicorn 27 -k asgi, 2 workers", _gateway_serve(2), _settings(worker_class="asgi"), _READY),
        ServerSpec("granian-1", "Granian (asgi, uvloop), 1 worker", _granian(1), _settings(), _READY),
        ServerSpec("granian-2", "Granian (asgi, uvloop), 2 workers", _granian(2), _settings(), _READY),
        ServerSpec("serve-tls", "gateway serve, 1 worker, TLS", _gateway_serve(1), _tls("tls"), _READY, tls=True),
        ServerSpec("serve-mtls", "gateway serve, 1 worker, mTLS", _gateway_serve(1), _tls("mtls"), _READY, tls=True, client_certificate=True),
        ServerSpec("v2-pg", "v2 app alone on PostgreSQL, Uvicorn", _uvicorn("bench.apps:create_v2_alone"), _settings("postgresql"), "/items?limit=1"),
        ServerSpec("gateway-pg", "gateway on PostgreSQL, Uvicorn", _gateway_uvicorn(), _settings("postgresql"), _READY),
        ServerSpec("driver-aiosqlite", "FastAPI + aiosqlite directly, Uvicorn", _uvicorn("bench.driver_apps:create_aiosqlite_app"), _settings(), "/items?limit=1"),
        ServerSpec("driver-sqlite3", "FastAPI + sqlite3 in the event loop, Uvicorn", _uvicorn("bench.driver_apps:create_sqlite3_app"), _settings(), "/items?limit=1"),
        ServerSpec("driver-pg", "FastAPI + an asyncpg pool directly, Uvicorn", _uvicorn("bench.driver_apps:create_asyncpg_app"), _settings("postgresql"), "/items?limit=1"),
    ]
}  # fmt: skip


def build_rows(etag: str) -> list[Row]:
    """Every row, in the issue's order; ``etag`` is item 1's, for the conditional GET."""
    item = f"/items/{ITEM_ID}"
    page = "/items?limit=20"
    # The cheapest v2 route: a conditional GET answered 304 (no body to render). Every v2
    # API route reads the catalog; the docs and schema routes are not the same code in both
    # (the gateway serves offline docs and documents its error shape).
    unchanged = (("If-None-Match", etag),)
    live = Request("/health/live")
    create = Request("/v2/items", "POST", _JSON, NEW_ITEM)
    return [
        Row("1", "floor: raw ASGI app", "floor", Request("/")),
        Row("R1", "bare Starlette route", "starlette", Request("/hello"), compare_to="1"),
        Row("R2", "bare FastAPI route (pydantic model)", "fastapi", Request("/hello"), compare_to="1"),
        Row("R3", "R2 under a Starlette Mount", "mounted", Request("/v3/hello"), compare_to="R2"),
        Row("R4", "R2 as gateway version /v3", "gateway-hello", Request("/v3/hello"), compare_to="R2", targets=(Target("R2", 0.90), Target("R5", 2.5))),
        # What the gateway's optional layers cost on R4: the access log, then metrics too.
        Row("R4a", "R4, access log off", "gateway-hello-nolog", Request("/v3/hello"), compare_to="R2"),
        Row("R4b", "R4, access log and metrics off", "gateway-hello-bare", Request("/v3/hello"), compare_to="R2"),
        # What counting requests per version and caller costs (issue 13's goal: R4 at least 0.97 x R4c).
        Row("R4c", "R4, usage accounting off", "gateway-hello-nousage", Request("/v3/hello"), compare_to="R4"),
        # Tracing (issue 15): off (no OTEL endpoint: R4's server), on at 100% and at 10%.
        Row("T0", "R4, tracing off", "gateway-hello", Request("/v3/hello"), compare_to="R2"),
        Row("T1", "R4, tracing on, 100% sampled", "gateway-hello-traced", Request("/v3/hello"), compare_to="T0"),
        Row("T2", "R4, tracing on, 10% sampled", "gateway-hello-traced-10", Request("/v3/hello"), compare_to="T0"),
        Row("R5", "R2 under the naive gateway", "naive-hello", Request("/v3/hello"), compare_to="R2"),
        Row("2a", "naive gateway", "naive", Request("/v2" + item)),
        Row("2b", "naive gateway", "naive", Request("/v2" + page)),
        Row("2c", "naive gateway", "naive", Request("/v2" + item, headers=unchanged)),
        # The same read and page by a minimal FastAPI app on each driver (bench/driver_apps.py).
        Row("D3a", "FastAPI + aiosqlite directly", "driver-aiosqlite", Request(item)),
        Row("D3b", "FastAPI + aiosqlite directly", "driver-aiosqlite", Request(page)),
        Row("L3a", "FastAPI + sqlite3 in the loop", "driver-sqlite3", Request(item), compare_to="D3a"),
        Row("L3b", "FastAPI + sqlite3 in the loop", "driver-sqlite3", Request(page), compare_to="D3b"),
        Row("3a", "v2 app alone", "v2", Request(item), compare_to="D3a", targets=(Target("D3a", 0.80),)),
        Row("3b", "v2 app alone", "v2", Request(page), compare_to="D3b", targets=(Target("D3b", 0.70),)),
        Row("3c", "v2 app alone", "v2", Request(item, headers=unchanged)),
        Row("4a", "gateway", "gateway", Request("/v2" + item), compare_to="3a", targets=(Target("3a", 0.90), Target("2a", 2.5))),
        Row("4b", "gateway", "gateway", Request("/v2" + page), compare_to="3b", targets=(Target("3b", 0.90), Target("2b", 2.5))),
        Row("4c", "gateway", "gateway", Request("/v2" + item, headers=unchanged), compare_to="3c", targets=(Target("3c", 0.90), Target("2c", 2.5))),
        Row("5a", "v2 app alone", "v2", Request("/items", "POST", _JSON, NEW_ITEM)),
        Row("5b", "gateway", "gateway", create, compare_to="5a", targets=(Target("5a", 0.90),)),
        Row("6a", "gateway", "gateway", live, compare_to="1", targets=(Target("1", 0.40),)),
        Row("6b", "gateway", "gateway", Request("/metrics"), compare_to="1"),
        Row("7a", "gateway serve, HTTP, keep-alive", "serve-1", live, "autocannon"),
        Row("7b", "gateway serve, TLS, keep-alive", "serve-tls", live, "autocannon", compare_to="7a"),
        Row("7c", "gateway serve, mTLS, keep-alive", "serve-mtls", live, "autocannon", compare_to="7a", targets=(Target("7a", 0.90),)),
        Row("7d", "gateway serve, HTTP, new connection each", "serve-1", live, "ab", True),
        Row("7e", "gateway serve, TLS, new connection each", "serve-tls", live, "ab", True, compare_to="7d"),
        Row("7f", "gateway serve, mTLS, new connection each", "serve-mtls", live, "ab", True, compare_to="7d"),
        Row("8a", "gateway serve (GatewayWorker), 1 worker", "serve-1", live, compare_to="6a"),
        Row("8b", "gateway serve (GatewayWorker), 2 workers", "serve-2", live, compare_to="8a"),
        Row("8c", "Gunicorn -k asgi, 1 worker", "asgi-1", live, compare_to="8a"),
        Row("8d", "Gunicorn -k asgi, 2 workers", "asgi-2", live, compare_to="8a"),
        Row("8e", "Granian, 1 worker", "granian-1", live, compare_to="8a"),
        Row("8f", "Granian, 2 workers", "granian-2", live, compare_to="8a"),
        Row("8g", "gateway, Uvicorn --http zttp", "gateway-zttp", live, compare_to="6a"),
        Row("D9a", "FastAPI + asyncpg directly", "driver-pg", Request(item)),
        Row("D9c", "FastAPI + asyncpg directly", "driver-pg", Request(page)),
        Row("9a", "v2 app alone, PostgreSQL", "v2-pg", Request(item), compare_to="D9a", targets=(Target("D9a", 0.80),)),
        Row("9b", "gateway, PostgreSQL", "gateway-pg", Request("/v2" + item), compare_to="9a", targets=(Target("9a", 0.90),)),
        Row("9c", "v2 app alone, PostgreSQL", "v2-pg", Request(page), compare_to="D9c", targets=(Target("D9c", 0.70),)),
        Row("9d", "gateway, PostgreSQL", "gateway-pg", Request("/v2" + page), compare_to="9c", targets=(Target("9c", 0.90),)),
    ]  # fmt: skip
