"""Prometheus metrics, summed across every Gunicorn worker.

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set by the Gunicorn config before any
worker forks) makes prometheus_client keep each worker's values in files there, and a
scrape of any worker reads them all. A lone process (tests, ``gateway dev``) keeps them
in a registry of its own app. Labels are bounded: the route template, never the raw path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.routing import Route

from gateway.background import running_alongside

MULTIPROCESS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets in seconds, from a cache hit to a request near the worker timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# How often a process publishes its requests in flight (and when a scrape reads it).
IN_FLIGHT_PUBLISH_SECONDS = 1.0
_STATUS_CLASSES = {digit: f"{digit}xx" for digit in range(1, 6)}


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads the values every worker wrote (a scrape, or the arbiter's server)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
    return registry


class GatewayMetrics:
    def __init__(self) -> None:
        # In multiprocess mode the values live in files, and a scrape builds its own registry.
        multiprocess = bool(os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE))
        self._registry = None if multiprocess else CollectorRegistry()
        labels = ["api_version", "route", "method", "status_class"]
        self._children: dict[tuple[str | None, str | None, str, int], tuple[Counter, Histogram]] = {}
        # Collectors that read state of their own (usage by caller), added to every scrape.
        self._collectors: list[Collector] = []
        self.requests = Counter("gateway_requests", "HTTP requests served.", labels, registry=self._registry)
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to the end of the response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        # Counted by the edge in a plain int, published every IN_FLIGHT_PUBLISH_SECONDS and on
        # each scrape: two gauge updates per request (a lock each, a file write each under
        # Gunicorn) cost more than the rest of the request's metrics.
        self.requests_in_flight = 0
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Requests being served now.",
            registry=self._registry,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "gateway_ready",
            "1 when the last readiness check passed and the process is not draining.",
            registry=self._registry,
            multiprocess_mode="livemin",
        )

        self.certificate_expiry = Gauge(
            "gateway_tls_certificate_expiry_timestamp_seconds",
            "When the server's TLS certificate expires (Unix time); 0 without TLS.",
            registry=self._registry,
            multiprocess_mode="livemin",
        )

    def observe(
        self, version: str | None, route: str | None, method: str, status: int, seconds: float
    ) -> None:
        key = (version, route, method, status // 100)
        children = self._children.get(key)
        if children is None:
            # Resolved once per label set: ``labels()`` validates and takes a lock every call.
            labels = (
                version or "",
                route or "unmatched",
                method,
                _STATUS_CLASSES.get(status // 100, "other"),
            )
            children = self._children[key] = (self.requests.labels(*labels), self.duration.labels(*labels))
        requests, duration = children
        requests.inc()
        duration.observe(seconds)

    def publish_in_flight(self) -> None:
        self.in_flight.set(self.requests_in_flight)

    @contextlib.asynccontextmanager
    async def publishing(self, interval: float = IN_FLIGHT_PUBLISH_SECONDS) -> AsyncIterator[None]:
        """Publish the requests in flight every ``interval`` seconds while in the block."""

        async def publish_every() -> None:
            while True:
                self.publish_in_flight()
                await asyncio.sleep(interval)

        try:
            async with running_alongside(publish_every):
                yield
        finally:
            self.publish_in_flight()

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)
        if self._registry is not None:
            self._registry.register(collector)

    def render(self) -> bytes:
        # This process's count exactly; other workers' as they last published it.
        self.publish_in_flight()
        registry = self._registry
        if registry is None:
            registry = multiprocess_registry()
            for collector in self._collectors:
                registry.register(collector)
        return generate_latest(registry)


class ConnectionGauges:
    """A worker's open connections and its cap, summed over the workers at /metrics.

    Set by the Gunicorn worker (the app does not see the server's connections) once a
    second, like the requests in flight; only under Gunicorn, where every gauge lands in
    the multiprocess directory whatever registry, if any, it belongs to.
    """

    def __init__(self, limit_per_worker: int) -> None:
        self.open = Gauge(
            "gateway_connections_open",
            "HTTP connections open now (a TLS one once its handshake is done).",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.limit = Gauge(
            "gateway_connections_limit",
            "Connections the workers hold before new requests get 503 (GATEWAY_MAX_CONNECTIONS each).",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.limit.set(limit_per_worker)

    def publish(self, open_connections: int) -> None:
        self.open.set(open_connections)


def metrics_route(metrics: GatewayMetrics) -> Route:
    async def expose(request: object) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", expose, methods=["GET"], name="metrics")
