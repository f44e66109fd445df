"""The upstream internals the gateway relies on, each named: an upgrade that moves one fails here.

Where Uvicorn, uvicorn-worker, Gunicorn, Starlette and FastAPI offer no public seam, the
gateway overrides or reads a private part (see docs/conventions.md). pyproject.toml
bounds those packages to the tested minor releases; when a new one is admitted, this test
says which override would be silently bypassed (a renamed method is never called again) and
which copied function changed upstream (a fix the copy lacks).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import pytest
from starlette.routing import Match, Mount

from gateway.routing import route_path_of

# (module, attribute path, where the gateway uses it)
_INTERNALS: list[tuple[str, str, str]] = [
    # The httptools protocol: gateway/serving/protocol.py overrides and calls these.
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol.data_received", "protocol.py overrides it"),
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol.on_message_begin", "protocol.py extends it"),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.on_message_complete",
        "protocol.py extends it",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.on_url",
        "protocol.py: 414 while the URL arrives",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.on_header",
        "protocol.py: 431 by header count",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.on_headers_complete",
        "protocol.py: the connection cap",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol._unset_keepalive_if_required",
        "protocol.py, connection_guard.py",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol._should_upgrade",
        "protocol.py's data_received",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol._unsupported_upgrade_warning",
        "protocol.py's data_received",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.send_400_response",
        "protocol.py: malformed requests",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.handle_websocket_upgrade",
        "protocol.py's data_received",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.timeout_keep_alive_handler",
        "connection_guard.py: the drain",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.shutdown",
        "connection_guard.py replaces it (drain)",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.connection_lost",
        "connection_guard.py extends it",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.on_response_complete",
        "protocol.py: resumes a paused pipeline",
    ),
    (
        "uvicorn.protocols.http.httptools_impl",
        "RequestResponseCycle",
        "connection_guard.py reads its body and flags",
    ),
    # Flow control: connection_guard.py replaces each protocol's with a gated subclass.
    (
        "uvicorn.protocols.http.flow_control",
        "FlowControl.pause_reading",
        "connection_guard.py: GatedFlowControl",
    ),
    (
        "uvicorn.protocols.http.flow_control",
        "FlowControl.resume_reading",
        "connection_guard.py: GatedFlowControl",
    ),
    ("uvicorn.protocols.http.flow_control", "HIGH_WATER_LIMIT", "protocol.py: a queued body's bound"),
    # The h11 protocol: gateway/serving/h11_protocol.py.
    (
        "uvicorn.protocols.http.h11_impl",
        "H11Protocol.send_400_response",
        "connection_guard.py replaces it (problem body, id)",
    ),
    ("uvicorn.protocols.http.h11_impl", "H11Protocol.data_received", "h11_protocol.py extends it"),
    ("uvicorn.protocols.http.h11_impl", "H11Protocol.on_response_complete", "h11_protocol.py extends it"),
    ("uvicorn.protocols.http.h11_impl", "H11Protocol.handle_websocket_upgrade", "h11_protocol.py extends it"),
    (
        "uvicorn.protocols.http.h11_impl",
        "H11Protocol._unset_keepalive_if_required",
        "connection_guard.py: the drain",
    ),
    (
        "uvicorn.protocols.http.h11_impl",
        "H11Protocol.timeout_keep_alive_handler",
        "connection_guard.py: the drain",
    ),
    ("uvicorn.protocols.http.h11_impl", "RequestResponseCycle", "h11_protocol.py tells heads apart by cycle"),
    # The server: gateway/serving/worker.py (DrainingServer).
    ("uvicorn.server", "Server.handle_exit", "worker.py: SIGTERM with a pre-stop delay"),
    ("uvicorn.server", "Server.on_tick", "worker.py: readiness on SIGTERM, heap trim"),
    ("uvicorn.server", "Server.startup", "worker.py: the TLS listener"),
    ("uvicorn.server", "Server.shutdown", "worker.py: the drain flag"),
    ("uvicorn.server", "Server.capture_signals", "worker.py: exit 0 under Gunicorn"),
    # uvicorn-worker: gateway/serving/worker.py (GatewayWorker).
    ("uvicorn_worker", "UvicornWorker._serve", "worker.py replaces it"),
    ("uvicorn_worker", "UvicornWorker._install_sigquit_handler", "worker.py replaces it (quick exit)"),
    ("uvicorn_worker", "UvicornWorker.CONFIG_KWARGS", "worker.py's Config options (the public seam)"),
    # Gunicorn.
    ("gunicorn.arbiter", "Arbiter.reload", "reload_guard.py wraps it (HUP refused on broken files)"),
    ("gunicorn.arbiter", "Arbiter.WORKER_BOOT_ERROR", "worker.py: the exit status of a failed boot"),
    # FastAPI: gateway/openapi.py restores exact integer bounds from the route models.
    ("fastapi.openapi.utils", "get_fields_from_routes", "openapi.py: exact integer bounds"),
]

# Instance attributes set by upstream __init__ that the gateway reads or replaces.
_INSTANCE_ATTRIBUTES: list[tuple[str, str, list[str]]] = [
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol",
        [
            "parser",
            "url",
            "scope",
            "cycle",
            "connections",
            "timeout_keep_alive_task",
            "timeout_keep_alive",
            "app",
            "logger",
        ],
    ),
    ("uvicorn.protocols.http.h11_impl", "H11Protocol", ["conn", "cycle", "connections", "app", "flow"]),
    ("uvicorn.protocols.http.flow_control", "FlowControl", ["read_paused"]),
    # gateway/metrics.py adds a worker's tallied observations to a histogram child at once.
    ("prometheus_client.metrics", "Histogram", ["_sum", "_buckets"]),
    (
        "uvicorn.server",
        "Server",
        ["server_state", "servers", "should_exit", "force_exit", "started", "_captured_signals"],
    ),
]

# Upstream functions the gateway copies, with a digest of the source copied: a change upstream
# (a fix the copy lacks) fails here until the copy is reviewed and the digest updated.
_COPIED: list[tuple[str, str, str, str]] = [
    (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol.data_received",
        "010a7ae59a5d3b1a",
        "gateway/serving/protocol.py's data_received (limits before the parser)",
    ),
    ("starlette._utils", "get_route_path", "243011d2a68ca7fe", "gateway/routing.py's route_path_of"),
    (
        "starlette.routing",
        "Mount.handle",
        "208ab48a6510dffd",
        "gateway/edge.py calls the Mount's app as it does",
    ),
]


def _resolve(module_name: str, path: str) -> Any:
    target: Any = importlib.import_module(module_name)
    for part in path.split("."):
        target = getattr(target, part)
    return target


@pytest.mark.parametrize(
    ("module_name", "path", "use"), _INTERNALS, ids=[f"{m}:{p}" for m, p, _ in _INTERNALS]
)
def test_an_internal_the_gateway_relies_on_is_still_there(module_name: str, path: str, use: str) -> None:
    try:
        _resolve(module_name, path)
    except (ImportError, AttributeError):
        pytest.fail(f"{module_name}.{path} is gone or renamed upstream; the gateway relies on it: {use}")


@pytest.mark.parametrize(
    ("module_name", "class_name", "attributes"),
    _INSTANCE_ATTRIBUTES,
    ids=[c for _, c, _ in _INSTANCE_ATTRIBUTES],
)
def test_instance_attributes_the_gateway_reads_are_still_set(
    module_name: str, class_name: str, attributes: list[str]
) -> None:
    source = inspect.getsource(_resolve(module_name, class_name))
    missing = [
        name for name in attributes if f"self.{name} =" not in source and f"self.{name}:" not in source
    ]
    assert missing == [], (
        f"{module_name}.{class_name} no longer sets {', '.join(missing)}, which the gateway reads"
    )


@pytest.mark.parametrize(
    ("module_name", "path", "digest", "copy"), _COPIED, ids=[p for _, p, _, _ in _COPIED]
)
def test_a_copied_upstream_function_is_unchanged(module_name: str, path: str, digest: str, copy: str) -> None:
    source = inspect.getsource(_resolve(module_name, path))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
        f"{module_name}.{path} changed upstream: review {copy} against it, then update the digest here"
    )


@pytest.mark.parametrize(
    ("path", "root_path"),
    [("/v2/items", ""), ("/api/v2/items", "/api"), ("/api", "/api"), ("/apiary/v2", "/api"), ("/v2", "")],
)
def test_the_edges_route_path_is_starlettes(path: str, root_path: str) -> None:
    from starlette._utils import get_route_path

    assert route_path_of(path, root_path) == get_route_path({"path": path, "root_path": root_path})


@pytest.mark.parametrize("root_path", ["", "/api"])
def test_the_scope_the_edge_gives_a_version_is_the_one_mount_matches_builds(root_path: str) -> None:
    from gateway.edge import GatewayEdge

    async def version_app(scope: Any, receive: Any, send: Any) -> None: ...

    mount = Mount("/v2", app=version_app)
    base = {"type": "http", "path": f"{root_path}/v2/items/7", "root_path": root_path, "method": "GET"}
    match, child = mount.matches(dict(base))
    assert match is Match.FULL

    built = dict(base)
    GatewayEdge._enter_mount(_EdgeStub(), built, mount, root_path, "/v2")  # type: ignore[arg-type]
    for key, value in child.items():
        assert built.get(key) == value, f"the edge's scope differs from Mount.matches' at {key!r}"


class _EdgeStub:
    router = None
