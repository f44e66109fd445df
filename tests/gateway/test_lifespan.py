"""Starlette never runs a mounted app's lifespan; the gateway runs every version's."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import probe_version

pytestmark = pytest.mark.anyio


async def test_version_lifespans_start_in_order_and_stop_in_reverse(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.registry")
    app = create_app(make_settings(versions=[probe_version("/v3"), probe_version("/v4")]))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            assert (await client.get("/v3/state")).json()["started"] is True
            assert (await client.get("/v4/state")).json()["started"] is True
    messages = [record.getMessage() for record in caplog.records if record.name == "gateway.registry"]
    assert messages == [
        "/v3 started",
        "/v4 started",
        "/v4 stopped",
        "/v3 stopped",
    ]


async def test_a_failing_version_startup_aborts_the_start_and_names_the_version(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.registry")
    app = create_app(
        make_settings(
            versions=[
                probe_version("/v3"),
                probe_version("/v4", factory="tests.versions.probe:create_app_failing_startup"),
            ]
        )
    )
    with pytest.raises(RuntimeError, match="cannot reach the probe's database"):
        async with LifespanManager(app):
            pass  # pragma: no cover - the start must fail
    failures = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert "startup of /v4 failed" in failures
    # The version that did start is stopped again.
    assert "/v3 stopped" in [record.getMessage() for record in caplog.records]


async def test_a_factory_that_returns_no_fastapi_app_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(TypeError, match="not a FastAPI app"):
        create_app(
            make_settings(versions=[probe_version(factory="tests.versions.probe:create_starlette_app")])
        )
