"""Request id, access log, body limit and version lifecycle: the gateway's one pass."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from gateway.versions import Lifecycle
from tests.conftest import open_client, probe_version

pytestmark = pytest.mark.anyio


async def test_a_well_formed_request_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/hello", headers={"X-Request-ID": "caller-42.a"})
    assert response.headers["x-request-id"] == "caller-42.a"


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "line\tbreak", "ünïcode"])
async def test_a_missing_or_malformed_request_id_is_replaced(
    client: httpx.AsyncClient, incoming: str | None
) -> None:
    headers = [(b"x-request-id", incoming.encode())] if incoming is not None else []
    response = await client.get("/health/live", headers=headers)
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    assert generated != incoming
    assert int(generated, 16) >= 0


async def test_one_structured_access_line_per_request(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    await client.get("/v3/hello", headers={"X-Request-ID": "req-1"})
    await client.get("/v9/nowhere", headers={"X-Request-ID": "req-2"})
    lines = [record for record in caplog.records if record.name == "gateway.access"]
    assert len(lines) == 2
    first, second = (record.__dict__ for record in lines)
    assert first["method"] == "GET"
    assert first["path"] == "/v3/hello"
    assert first["api_version"] == "v3"
    assert first["route"] == "/v3/hello"
    assert first["status"] == 200
    assert first["request_id"] == "req-1"
    assert first["duration_ms"] >= 0
    assert first["client"] == "127.0.0.1:123"
    assert second["route"] is None
    assert second["status"] == 404
    assert second["api_version"] is None


async def test_the_access_line_names_the_route_template_not_the_raw_path(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    await client.get("/v3/slow?seconds=0")
    await client.get("/health/live")
    routes = [record.__dict__["route"] for record in caplog.records if record.name == "gateway.access"]
    assert routes == ["/v3/slow", "/health/live"]


async def test_access_log_can_be_turned_off(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    async for client in open_client(make_settings(access_log=False)):
        await client.get("/v3/hello")
    assert not [record for record in caplog.records if record.name == "gateway.access"]


@pytest.fixture
async def small_limit_client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(make_settings(max_body_size=1000)):
        yield client


async def _chunks(count: int, size: int, sent: list[int]) -> AsyncIterator[bytes]:
    for _ in range(count):
        sent.append(size)
        yield b"x" * size


async def test_a_body_within_the_limit_passes(small_limit_client: httpx.AsyncClient) -> None:
    response = await small_limit_client.post("/v3/upload", content=b"x" * 1000)
    assert response.json() == {"received": 1000}


@pytest.mark.parametrize("path", ["/v3/upload", "/health/live", "/"])
async def test_a_declared_oversized_body_is_refused_before_the_app_runs(
    small_limit_client: httpx.AsyncClient, path: str
) -> None:
    response = await small_limit_client.post(path, content=b"x" * 1001)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    assert response.json()["title"] == "Content Too Large"


async def test_an_oversized_chunked_body_is_refused_at_the_limit(
    small_limit_client: httpx.AsyncClient,
) -> None:
    sent: list[int] = []
    response = await small_limit_client.post("/v3/upload", content=_chunks(100, 300, sent))
    assert response.status_code == 413
    assert response.json()["status"] == 413
    # The app stops reading at the chunk that crosses the limit, not at the end of the body.
    assert sum(sent) <= 1200


async def test_an_oversized_chunked_body_to_a_validated_route_is_413_not_422(
    small_limit_client: httpx.AsyncClient,
) -> None:
    sent: list[int] = []
    response = await small_limit_client.post("/v3/greetings", content=_chunks(10, 500, sent))
    assert response.status_code == 413


def _deprecated_settings(make_settings: Callable[..., Settings], **lifecycle: Any) -> Settings:
    return make_settings(
        versions=[
            probe_version("/v3"),
            probe_version("/v2", status="deprecated", successor="/v3", **lifecycle),
        ]
    )


async def test_a_deprecated_version_announces_deprecation_sunset_and_successor(
    make_settings: Callable[..., Settings],
) -> None:
    settings = _deprecated_settings(
        make_settings, deprecated_at="2026-09-01T00:00:00Z", sunset_at="2099-06-30T00:00:00Z"
    )
    async for client in open_client(settings, root_path="/api"):
        response = await client.get("/api/v2/hello")
        assert response.status_code == 200
        assert response.headers["deprecation"] == "@1788220800"
        sunset = parsedate_to_datetime(response.headers["sunset"])
        assert sunset.isoformat() == "2099-06-30T00:00:00+00:00"
        links = response.headers.get_list("link")
        assert '</api/docs#v2>; rel="deprecation"; type="text/html"' in links
        assert '</api/v3/>; rel="successor-version"' in links

        current = await client.get("/api/v3/hello")
        assert "deprecation" not in current.headers
        assert "sunset" not in current.headers


async def test_a_version_past_its_sunset_answers_410_naming_the_successor(
    make_settings: Callable[..., Settings],
) -> None:
    settings = _deprecated_settings(
        make_settings, deprecated_at="2026-01-01T00:00:00Z", sunset_at="2026-02-01T00:00:00Z"
    )
    async for client in open_client(settings):
        for method, path in [("GET", "/v2/hello"), ("POST", "/v2/greetings"), ("GET", "/v2/docs")]:
            response = await client.request(method, path)
            assert response.status_code == 410
            body = response.json()
            assert body["successor"] == "/v3"
            assert "/v3" in body["detail"]
            assert response.headers["sunset"] == "Sun, 01 Feb 2026 00:00:00 GMT"
        index = {version["name"]: version for version in (await client.get("/")).json()["versions"]}
        assert index["v2"]["status"] == "sunset"


async def test_sunset_enforcement_can_be_switched_off(make_settings: Callable[..., Settings]) -> None:
    settings = _deprecated_settings(
        make_settings, deprecated_at="2026-01-01T00:00:00Z", sunset_at="2026-02-01T00:00:00Z"
    )
    settings = settings.model_copy(update={"enforce_sunset": False})
    async for client in open_client(settings):
        response = await client.get("/v2/hello")
        assert response.status_code == 200
        assert response.headers["sunset"] == "Sun, 01 Feb 2026 00:00:00 GMT"


async def test_a_version_with_status_sunset_is_gone_without_a_date(
    make_settings: Callable[..., Settings],
) -> None:
    settings = _deprecated_settings(make_settings, deprecated_at="2026-01-01T00:00:00Z")
    settings = settings.model_copy(
        update={
            "versions": [
                settings.versions[0],
                settings.versions[1].model_copy(update={"status": Lifecycle.SUNSET}),
            ]
        }
    )
    async for client in open_client(settings):
        response = await client.get("/v2/hello")
        assert response.status_code == 410
        assert json.loads(response.text)["successor"] == "/v3"


def _brownout_settings(make_settings: Callable[..., Settings], *windows: tuple[str, str]) -> Settings:
    return _deprecated_settings(
        make_settings,
        deprecated_at="2026-01-01T00:00:00Z",
        sunset_at="2099-01-01T00:00:00Z",
        brownouts=[{"start": start, "end": end} for start, end in windows],
    )


async def test_inside_a_brownout_the_version_answers_410_with_the_window_and_the_sunset(
    make_settings: Callable[..., Settings],
) -> None:
    now = datetime.now(UTC)
    window = ((now - timedelta(minutes=1)).isoformat(), (now + timedelta(minutes=5)).isoformat())
    async for client in open_client(_brownout_settings(make_settings, window)):
        response = await client.get("/v2/hello")
        assert response.status_code == 410
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["sunset"] == "Thu, 01 Jan 2099 00:00:00 GMT"
        problem = response.json()
        assert problem["sunset"] == "2099-01-01T00:00:00Z"
        assert problem["successor"] == "/v3"
        assert problem["brownout"]["end"] == datetime.fromisoformat(window[1]).isoformat().replace(
            "+00:00", "Z"
        )
        assert "a brownout before its sunset on 2099-01-01T00:00:00Z; use /v3 instead." in problem["detail"]
        # The current version is untouched.
        assert (await client.get("/v3/hello")).status_code == 200


async def test_outside_its_brownouts_the_version_serves(make_settings: Callable[..., Settings]) -> None:
    now = datetime.now(UTC)
    past = ((now - timedelta(hours=2)).isoformat(), (now - timedelta(hours=1)).isoformat())
    future = ((now + timedelta(hours=1)).isoformat(), (now + timedelta(hours=2)).isoformat())
    async for client in open_client(_brownout_settings(make_settings, past, future)):
        response = await client.get("/v2/hello")
        assert response.status_code == 200
        assert "deprecation" in response.headers


async def test_brownouts_are_off_when_sunset_enforcement_is(make_settings: Callable[..., Settings]) -> None:
    now = datetime.now(UTC)
    window = ((now - timedelta(minutes=1)).isoformat(), (now + timedelta(minutes=5)).isoformat())
    settings = _brownout_settings(make_settings, window).model_copy(update={"enforce_sunset": False})
    async for client in open_client(settings):
        assert (await client.get("/v2/hello")).status_code == 200
