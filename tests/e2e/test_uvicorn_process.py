"""The gateway as a real Uvicorn process: what only a server on a socket shows."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from tests.conftest import probe_version
from tests.e2e.conftest import PROXY_PREFIX
from tests.servers import (
    GUNICORN_CLEAN_STOP,
    BehindProxy,
    ServerProcess,
    gateway_serve_command,
    loopback_client,
    running_server,
    server_environment,
)

_ASSET_REFERENCE = re.compile(r"""(?:href|src)=["']([^"']+)["']""")


def _asset_references(html: str) -> list[str]:
    return _ASSET_REFERENCE.findall(html)


def test_the_index_lists_v1_deprecated_and_v2_current(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    versions = {version["name"]: version for version in response.json()["versions"]}
    assert versions["v1"]["status"] == "deprecated"
    assert versions["v1"]["successor"] == "/v2"
    assert versions["v1"]["docs"] == "/v1/docs"
    assert versions["v2"]["status"] == "current"
    assert versions["v2"]["openapi"] == "/v2/openapi.json"


def test_the_docs_landing_page_links_every_version(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for prefix in ("/v1", "/v2"):
        assert f'href="{prefix}/docs"' in response.text
        assert f'href="{prefix}/openapi.json"' in response.text


def test_a_versions_swagger_ui_loads_its_own_schema_and_local_assets(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        page = client.get("/v1/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "url: '/v1/openapi.json'" in page.text
        assets = _asset_references(page.text)
        assert "/static/docs/swagger-ui-bundle.js" in assets
        assert "/static/docs/swagger-ui.css" in assets
        for asset in assets:
            assert asset.startswith("/static/docs/"), f"{asset} is not served by the gateway"
            assert client.get(asset).status_code == 200, asset


def test_v1s_schema_is_its_own(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    schema = response.json()
    assert schema["info"]["title"] == "Items catalog v1"
    assert schema["servers"] == [{"url": "/v1"}]
    assert "/items" in schema["paths"]
    # Neither the root's routes nor another version's leak into v1's schema.
    assert not any(path.startswith(("/health", "/docs", "/v1", "/v2")) for path in schema["paths"])


def test_v2_lists_items_a_page_at_a_time(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        response = client.get("/v2/items", params={"limit": 1})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    page = response.json()
    assert isinstance(page["data"], list)
    assert len(page["data"]) <= 1
    assert "next_cursor" in page
    # v2 is current: no lifecycle headers.
    assert "deprecation" not in response.headers
    assert "sunset" not in response.headers


def test_the_process_is_ready_once_every_version_started(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "pass"
    assert {name.split(":")[0] for name in body["checks"]} == {"v1", "v2", "internal"}


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/v1/docs", "/v1/openapi.json", "/v2/items", "/health/ready", "/v2/nowhere"]
)
def test_every_response_carries_a_request_id(catalog_server: ServerProcess, path: str) -> None:
    with loopback_client(catalog_server.origin) as client:
        generated = client.get(path)
        echoed = client.get(path, headers={"X-Request-ID": "e2e-request-1"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    assert echoed.headers["x-request-id"] == "e2e-request-1"


def test_an_item_created_through_v1_is_read_through_v2(catalog_server: ServerProcess) -> None:
    with loopback_client(catalog_server.origin) as client:
        created = client.post("/v1/items", json={"name": "Widget", "price": 12.5})
        assert created.status_code == 201, created.text
        assert created.headers["deprecation"].startswith("@")
        assert "sunset" in created.headers
        item_id = created.json()["id"]
        read = client.get(f"/v2/items/{item_id}")
    assert read.status_code == 200, read.text
    item = read.json()
    assert item["id"] == item_id
    assert item["name"] == "Widget"
    assert item["price"] == {"amount": "12.50", "currency": "EUR"}


def test_behind_a_proxy_v1s_docs_use_the_root_path(catalog_server_behind_proxy: BehindProxy) -> None:
    with loopback_client(catalog_server_behind_proxy.origin) as client:
        page = client.get(f"{PROXY_PREFIX}/v1/docs")
        assert page.status_code == 200
        assert f"url: '{PROXY_PREFIX}/v1/openapi.json'" in page.text
        assets = _asset_references(page.text)
        assert f"{PROXY_PREFIX}/static/docs/swagger-ui-bundle.js" in assets
        for asset in assets:
            assert asset.startswith(f"{PROXY_PREFIX}/static/docs/"), asset
            assert client.get(asset).status_code == 200, asset
        schema = client.get(f"{PROXY_PREFIX}/v1/openapi.json").json()
    assert schema["servers"] == [{"url": f"{PROXY_PREFIX}/v1"}]
    assert schema["info"]["title"] == "Items catalog v1"


def test_behind_a_proxy_the_index_links_through_the_proxy(catalog_server_behind_proxy: BehindProxy) -> None:
    with loopback_client(catalog_server_behind_proxy.origin) as client:
        response = client.get(f"{PROXY_PREFIX}/")
    versions = {version["name"]: version for version in response.json()["versions"]}
    assert versions["v2"]["docs"] == f"{PROXY_PREFIX}/v2/docs"
    assert response.headers["link"] == f'<{PROXY_PREFIX}/.well-known/api-catalog>; rel="api-catalog"'


def test_uvicorn_expects_the_proxy_to_strip_the_root_path(probe_server_behind_proxy: BehindProxy) -> None:
    # Uvicorn 0.54 prepends --root-path to every request path it receives
    # (uvicorn/protocols/http/h11_impl.py and httptools_impl.py: full_path = root_path + path),
    # so only a proxy that strips the prefix works; one that forwards /api/... gets 404s.
    with loopback_client(probe_server_behind_proxy.server.origin) as client:
        assert client.get("/v3/hello").json() == {"hello": "probe"}
        unstripped = client.get(f"{PROXY_PREFIX}/v3/hello")
    assert unstripped.status_code == 404
    assert unstripped.headers["content-type"] == "application/problem+json"


def test_the_harness_serves_a_test_only_version(probe_server: ServerProcess) -> None:
    with loopback_client(probe_server.origin) as client:
        hello = client.get("/v3/hello")
        docs = client.get("/v3/docs")
        schema = client.get("/v3/openapi.json").json()
        index = client.get("/").json()
    assert hello.json() == {"hello": "probe"}
    assert "x-request-id" in hello.headers
    assert "url: '/v3/openapi.json'" in docs.text
    assert schema["servers"] == [{"url": "/v3"}]
    assert [version["name"] for version in index["versions"]] == ["v3"]


def test_the_harness_serves_a_test_only_version_behind_a_proxy(
    probe_server_behind_proxy: BehindProxy,
) -> None:
    with loopback_client(probe_server_behind_proxy.origin) as client:
        docs = client.get(f"{PROXY_PREFIX}/v3/docs")
        schema = client.get(f"{PROXY_PREFIX}/v3/openapi.json").json()
        css = client.get(f"{PROXY_PREFIX}/static/docs/swagger-ui.css")
    assert f"url: '{PROXY_PREFIX}/v3/openapi.json'" in docs.text
    assert f'href="{PROXY_PREFIX}/static/docs/swagger-ui.css"' in docs.text
    assert schema["servers"] == [{"url": f"{PROXY_PREFIX}/v3"}]
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


def send_requests_with_known_ids(origin: str) -> None:
    with loopback_client(origin) as client:
        client.get("/v3/hello", headers={"X-Request-ID": "e2e-hello"})
        client.get("/v3/nowhere", headers={"X-Request-ID": "e2e-missing"})
        client.post("/v3/greetings", json={"message": ""}, headers={"X-Request-ID": "e2e-invalid"})


def test_gateway_serve_writes_one_json_access_line_per_request(tmp_path: Path) -> None:
    environment = server_environment(tmp_path, versions=[probe_version("/v3")])
    with running_server(
        gateway_serve_command(), environment, tmp_path, clean_stop=GUNICORN_CLEAN_STOP
    ) as server:
        send_requests_with_known_ids(server.origin)
    # Read after the server stopped: every line it wrote has been flushed and collected.
    lines = server.stdout.lines()
    records = [json.loads(line) for line in lines]  # Every line on stdout is JSON.
    access = [record for record in records if record["logger"] == "gateway.access"]
    assert access, server.output()
    for record in access:
        assert {"method", "path", "status", "request_id", "route", "duration_ms"} <= record.keys(), record
        assert isinstance(record["duration_ms"], float | int)
    by_id = {record["request_id"]: record for record in access}
    hello = by_id["e2e-hello"]
    assert {name: hello[name] for name in ("method", "path", "route", "status", "api_version")} == {
        "method": "GET",
        "path": "/v3/hello",
        "route": "/v3/hello",
        "status": 200,
        "api_version": "v3",
    }
    assert by_id["e2e-missing"]["status"] == 404
    assert by_id["e2e-invalid"]["status"] == 422
    assert by_id["e2e-invalid"]["route"] == "/v3/greetings"
    # Uvicorn's own access line is off: one line per request, not two.
    assert not any(record["logger"] == "uvicorn.access" for record in records)
    assert not any('"GET /v3/hello HTTP/1.1"' in line for line in lines)


def test_head_of_a_fastapi_route_sends_the_get_headers_and_no_body(catalog_server: ServerProcess) -> None:
    # Two requests on one connection: a body after the HEAD's headers would be read as the
    # start of the second response.
    request = (
        b"HEAD /v2/items HTTP/1.1\r\nHost: gateway\r\n\r\n"
        b"GET /health/live HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", catalog_server.port), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"content-length: " in head.lower()
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:200]
