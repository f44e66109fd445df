"""Gunicorn's native asgi worker (GATEWAY_WORKER_CLASS=asgi) gets the settings it can use."""

from __future__ import annotations

from tests.servers import loopback_client
from tests.serving.conftest import GatewayGroup


def test_the_asgi_worker_serves_under_the_root_path(gateway_group: GatewayGroup) -> None:
    # graceful=False: the asgi worker does not log Uvicorn's lifespan shutdown line.
    group = gateway_group(workers=1, graceful=False, worker_class="asgi", root_path="/api")
    with group as server, loopback_client(server.origin) as client:
        versions = client.get("/").json()["versions"]
    assert {version["url"] for version in versions} >= {"/api/v1/", "/api/v2/"}
