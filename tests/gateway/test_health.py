"""Liveness touches nothing; readiness runs every check under its own timeout."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.settings import Settings
from gateway.tls.certificates import create_authority, issue_server_certificate
from gateway.tls.expiry import expiry_check
from tests.conftest import open_client, probe_version

pytestmark = pytest.mark.anyio


async def test_liveness_passes_even_when_a_dependency_hangs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        versions=[probe_version(factory="tests.versions.probe:create_app_with_hung_check")]
    )
    async for client in open_client(settings):
        started = time.perf_counter()
        response = await client.get("/health/live")
        assert time.perf_counter() - started < 0.5
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/health+json"
        assert response.json() == {"status": "pass"}


async def test_liveness_answers_head_and_refuses_other_methods(client: httpx.AsyncClient) -> None:
    head = await client.head("/health/live")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(b'{"status": "pass"}'))
    assert head.headers["cache-control"] == "no-store"
    assert "x-request-id" in head.headers
    refused = await client.post("/health/live")
    assert refused.status_code == 405
    assert refused.headers["content-type"] == "application/problem+json"


async def test_readiness_passes_when_every_check_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "pass"
    assert response.headers["cache-control"] == "no-store"


async def test_a_hung_dependency_fails_readiness_within_about_a_second(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        versions=[
            probe_version(factory="tests.versions.probe:create_app_with_hung_check"),
            probe_version("/v4", factory="tests.versions.probe:create_app_with_failing_check"),
        ]
    )
    async for client in open_client(settings):
        started = time.perf_counter()
        response = await client.get("/health/ready")
        elapsed = time.perf_counter() - started
        assert response.status_code == 503
        assert elapsed < 1.5, "checks run concurrently, each under the 0.8 s timeout"
        checks = response.json()["checks"]
        (hung,) = checks["v3:hung-dependency"]
        assert hung["status"] == "fail"
        assert "no answer within 0.8s" in hung["output"]
        (refusing,) = checks["v4:refusing-dependency"]
        assert refusing["status"] == "fail"
        assert "ConnectionRefusedError" in refusing["output"]
        assert refusing["observedUnit"] == "ms"


async def test_a_per_check_timeout_follows_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        versions=[probe_version(factory="tests.versions.probe:create_app_with_hung_check")],
        readiness_timeout=0.1,
    )
    async for client in open_client(settings):
        started = time.perf_counter()
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert time.perf_counter() - started < 0.5


async def test_readiness_turns_503_while_draining(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            assert (await client.get("/health/ready")).status_code == 200
            app.state.health.begin_draining()
            response = await client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["output"].startswith("draining")
            assert (await client.get("/health/live")).status_code == 200


async def test_health_summary_reports_release_worker_and_versions(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health")).json()
    assert body["status"] == "pass"
    assert body["releaseId"] == "0.1.0"
    assert body["worker"]["pid"] == os.getpid()
    assert body["uptime_seconds"] >= 0
    assert body["versions"] == [{"prefix": "/v3", "status": "current"}]
    assert body["draining"] is False


async def test_an_expired_server_certificate_fails_readiness(tmp_path: Path) -> None:
    authority = create_authority("CA")
    expired = issue_server_certificate(
        authority, ["localhost"], not_before=datetime.now(UTC) - timedelta(days=10), valid_days=1
    )
    certificate = tmp_path / "server.pem"
    certificate.write_bytes(expired.pem())
    check = expiry_check(certificate, warning_days=14)
    with pytest.raises(RuntimeError, match="expired on"):
        await check.probe()
