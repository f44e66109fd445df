"""/metrics: request counts and latency by version, route template, method and status class."""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.metrics import LATENCY_BUCKETS, GatewayMetrics
from gateway.settings import Settings
from tests.conftest import open_client

pytestmark = pytest.mark.anyio


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_requests_are_counted_by_route_template_never_raw_path(client: httpx.AsyncClient) -> None:
    for seconds in ("0", "0.0", "0.00"):
        await client.get("/v3/slow", params={"seconds": seconds})
    await client.get("/v3/does-not-exist-12345")
    await client.get("/v9/nowhere-12345")
    await client.post("/v3/greetings", json={"message": ""})
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    slow = {"api_version": "v3", "route": "/v3/slow", "method": "GET", "status_class": "2xx"}
    assert _sample(text, "gateway_requests_total", **slow) == 3
    assert _sample(text, "gateway_request_duration_seconds_count", **slow) == 3
    # Unmatched inside a version: the mount's template; outside every route: "unmatched".
    assert _sample(text, "gateway_requests_total", route="/v3/{path}", status_class="4xx") == 1
    assert _sample(text, "gateway_requests_total", route="unmatched", status_class="4xx") == 1
    assert _sample(text, "gateway_requests_total", route="/v3/greetings", status_class="4xx") == 1
    assert "12345" not in text
    assert _sample(text, "gateway_requests_in_flight") == 1  # the scrape itself


async def test_readiness_is_exported(client: httpx.AsyncClient) -> None:
    await client.get("/health/ready")
    assert _sample((await client.get("/metrics")).text, "gateway_ready") == 1


async def test_metrics_can_be_turned_off(make_settings: Callable[..., Settings]) -> None:
    async for client in open_client(make_settings(metrics_enabled=False)):
        assert (await client.get("/metrics")).status_code == 404


async def test_metrics_stay_out_of_every_version_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/v3/openapi.json")).json()
    assert not any("metrics" in path for path in schema["paths"])


async def test_requests_in_flight_are_published_while_the_app_runs_and_zero_after() -> None:
    metrics = GatewayMetrics()

    def published() -> float | None:
        return _sample(generate_latest(metrics.in_flight).decode(), "gateway_requests_in_flight")

    async with metrics.publishing(interval=0.01):
        metrics.requests_in_flight = 3
        for _ in range(100):  # A published value, not one computed when read.
            if published() == 3:
                break
            await anyio.sleep(0.01)
        assert published() == 3
        metrics.requests_in_flight = 0
    assert published() == 0


def test_tallied_latencies_land_in_the_buckets_prometheus_client_would_choose() -> None:
    metrics = GatewayMetrics()
    reference_registry = CollectorRegistry()
    reference = Histogram("reference", "", buckets=LATENCY_BUCKETS, registry=reference_registry)
    # Exact bounds, just past them, zero and past the last bound.
    for seconds in (0.0, 0.001, 0.0010001, 0.0025, 0.3, 29.99, 30.0, 31.0):
        metrics.observe("v3", "/v3/slow", "GET", 200, seconds)
        reference.observe(seconds)
    text = metrics.render().decode()
    expected = generate_latest(reference_registry).decode()
    for bound in [*map(str, LATENCY_BUCKETS), "+Inf"]:
        want = _sample(expected, "reference_bucket", le=bound)
        assert _sample(text, "gateway_request_duration_seconds_bucket", le=bound) == want, bound
    assert _sample(text, "gateway_request_duration_seconds_count") == 8
    assert _sample(text, "gateway_request_duration_seconds_sum") == pytest.approx(
        _sample(expected, "reference_sum")
    )
    assert _sample(text, "gateway_requests_total", route="/v3/slow") == 8
