"""Who still calls each version, as /internal/lifecycle and /metrics tell it, in process.

``tests/serving/test_lifecycle_group.py`` shows the same summed over a real process group
and kept across a reload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gateway.app import create_app
from tests.conftest import probe_version
from tests.identities import clients_by_identity, spiffe_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import httpx

    from gateway.settings import Settings
    from gateway.versions import VersionEntry

pytestmark = pytest.mark.anyio
OPS = "ops"


def _deprecated_v1(**lifecycle: Any) -> VersionEntry:
    return probe_version(
        "/v1",
        status="deprecated",
        deprecated_at="2026-01-01T00:00:00Z",
        sunset_at="2099-01-01T00:00:00Z",
        **lifecycle,
    )


@pytest.fixture
async def client_of(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[[str | None], httpx.AsyncClient]]:
    settings = make_settings(
        versions=[_deprecated_v1(successor="/v2"), probe_version("/v2")],
        internal_allow={"GET /internal/lifecycle": [spiffe_id(OPS)]},
        trusted_proxies=[spiffe_id("envoy")],
        caller_header="X-Authenticated-User",
        usage_callers_per_version=3,
    )
    async with clients_by_identity(create_app(settings)) as client_of:
        yield client_of


async def _report(client_of: Callable[[str | None], httpx.AsyncClient]) -> dict[str, Any]:
    response = await client_of(OPS).get("/internal/lifecycle")
    assert response.status_code == 200, response.text
    versions: dict[str, Any] = {version["name"]: version for version in response.json()["versions"]}
    return versions


async def test_the_report_names_each_versions_callers(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    for service, path in [
        ("billing", "/v1/hello"),
        ("billing", "/v1/hello"),
        ("reporting", "/v1/tls"),
        (None, "/v1/hello"),
    ]:
        assert (await client_of(service).get(path)).status_code == 200
    await client_of("billing").get("/v2/hello")

    versions = await _report(client_of)
    v1 = versions["v1"]
    assert (v1["status"], v1["sunset_at"], v1["requests"]) == ("deprecated", "2099-01-01T00:00:00Z", 4)
    callers = {caller["caller"]: caller for caller in v1["callers"]}
    assert set(callers) == {spiffe_id("billing"), spiffe_id("reporting"), "anonymous"}
    billing = callers[spiffe_id("billing")]
    assert billing["requests"] == 2
    assert billing["routes"] == [{"route": "/v1/hello", "requests": 2}]
    assert billing["status_classes"] == {"2xx": 2}
    assert billing["first_seen"] <= billing["last_seen"]
    assert [caller["caller"] for caller in versions["v2"]["callers"]] == [spiffe_id("billing")]


async def test_the_report_is_behind_the_internal_guard(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    assert (await client_of(None).get("/internal/lifecycle")).status_code == 401
    assert (await client_of("billing").get("/internal/lifecycle")).status_code == 403


async def test_a_caller_header_counts_only_from_a_trusted_proxy(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    user = {"X-Authenticated-User": "alice@example.com"}
    assert (await client_of("envoy").get("/v1/hello", headers=user)).status_code == 200
    # From anyone else the header is removed before the app, and names no one.
    forged = await client_of(None).get("/v1/tls", headers=user)
    assert forged.status_code == 200

    callers = {caller["caller"] for caller in (await _report(client_of))["v1"]["callers"]}
    assert callers == {"alice@example.com", "anonymous"}


async def test_callers_past_the_cap_are_counted_as_other(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    for service in ("a", "b", "c", "d", "e"):
        await client_of(service).get("/v1/hello")
    callers = {caller["caller"]: caller["requests"] for caller in (await _report(client_of))["v1"]["callers"]}
    assert len(callers) == 4
    assert callers["other"] == 2


async def test_a_brownout_refusal_is_counted_for_its_caller(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        versions=[
            _deprecated_v1(brownouts=[{"start": "2026-01-02T00:00:00Z", "end": "2098-01-01T00:00:00Z"}])
        ],
        internal_allow={"GET /internal/lifecycle": [spiffe_id(OPS)]},
    )
    async with clients_by_identity(create_app(settings)) as client_of:
        assert (await client_of("billing").get("/v1/hello")).status_code == 410
        (caller,) = (await _report(client_of))["v1"]["callers"]
        assert (caller["caller"], caller["refused"], caller["status_classes"]) == (
            spiffe_id("billing"),
            1,
            {"4xx": 1},
        )
        assert (await _report(client_of))["v1"]["in_brownout"] is True


async def test_metrics_count_requests_per_version_and_caller(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    await client_of("billing").get("/v1/hello")
    await client_of("billing").get("/v1/hello")
    text = (await client_of(None).get("/metrics")).text
    assert f'gateway_version_requests_total{{caller="{spiffe_id("billing")}",version="v1"}} 2.0' in text


async def test_usage_accounting_can_be_switched_off(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(internal_allow={"GET /internal/lifecycle": [spiffe_id(OPS)]}, usage=False)
    async with clients_by_identity(create_app(settings)) as client_of:
        assert (await client_of("billing").get("/v3/hello")).status_code == 200
        assert (await client_of(OPS).get("/internal/lifecycle")).status_code == 404
        assert "gateway_version_requests" not in (await client_of(None).get("/metrics")).text
