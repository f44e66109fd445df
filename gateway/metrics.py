"""Prometheus metrics, summed across every Gunicorn worker.

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set by the Gunicorn config before any
worker forks) makes prometheus_client keep each worker's values in files there, and a
scrape of any worker reads them all. A lone process (tests, ``gateway dev``) keeps them
in a registry of its own app. Labels are bounded: the route template, never the raw path.

The edge tallies each request in plain counters of its own; prometheus_client takes a lock
per value it updates and, under Gunicorn, writes each to its file, three times a request.
The tallies reach prometheus_client before every scrape of the process and, under Gunicorn,
at the end of each pass of the event loop in which requests finished (with their access
lines), so a scrape of any worker counts every request answered before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from bisect import bisect_left
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
# (API version, route template, method, status // 100)
_LabelKey = tuple[str | None, str | None, str, int]


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
        self._children: dict[_LabelKey, tuple[Counter, Histogram]] = {}
        # Per label set since the last flush: the seconds summed, then a count per latency
        # bucket (the last one past every bound).
        self._tallies: dict[_LabelKey, list[float]] = {}
        # Other processes read the files: they get the tallies at the end of each loop pass.
        self._flush_each_pass = multiprocess
        self._flush_due = False
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
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        tally[0] += seconds
        # The first bucket whose bound holds the value, as prometheus_client's own observe finds it.
        tally[bisect_left(LATENCY_BUCKETS, seconds) + 1] += 1
        if self._flush_each_pass and not self._flush_due:
            self._flush_due = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        """Add the tallies to prometheus_client's values (and, under Gunicorn, their files)."""
        tallies, self._tallies = self._tallies, {}
        self._flush_due = False
        for key, tally in tallies.items():
            requests, duration = self._children_of(key)
            buckets = tally[1:]
            requests.inc(sum(buckets))
            # Histogram has no public way to add many observations at once.
            duration._sum.inc(tally[0])
            for index, count in enumerate(buckets):
                if count:
                    duration._buckets[index].inc(count)

    def _children_of(self, key: _LabelKey) -> tuple[Counter, Histogram]:
        children = self._children.get(key)
        if children is None:
            # Resolved once per label set: ``labels()`` validates and takes a lock every call.
            version, route, method, status_class = key
            labels = (
                version or "",
                route or "unmatched",
                method,
                _STATUS_CLASSES.get(status_class, "other"),
            )
            children = self._children[key] = (self.requests.labels(*labels), self.duration.labels(*labels))
        return children

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
            self.flush()

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)
        if self._registry is not None:
            self._registry.register(collector)

    def render(self) -> bytes:
        # This process's count exactly; other workers' as they last published it.
        self.publish_in_flight()
        self.flush()
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
