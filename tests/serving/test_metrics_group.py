"""/metrics under Gunicorn sums what every worker served, whichever worker answers the scrape."""

from __future__ import annotations

import os
import re
import signal

from tests.servers import LOOPBACK, loopback_client
from tests.services.databases import closed_port
from tests.serving.conftest import GatewayGroup, wait_for, worker_pids

REQUESTS = 200
_MAX_SCRAPES = 200
_PID_ROUTE_COUNT = re.compile(
    r'^gateway_requests_total\{[^}]*route="/v3/pid"[^}]*status_class="2xx"[^}]*\} (\S+)$', re.M
)


def test_metrics_count_requests_served_by_every_worker(gateway_group: GatewayGroup) -> None:
    with gateway_group() as server:
        pids = set()
        for _ in range(REQUESTS):
            # A new connection each time, so that both workers take some.
            with loopback_client(server.origin) as client:
                pids.add(client.get("/v3/pid").json()["pid"])
        assert len(pids) == 2, "both workers served requests"

        # Scrape through new connections until both workers have answered one (which worker
        # accepts is the kernel's choice: bounded, not a fixed count).
        scraped_by: set[int] = set()
        totals = []
        for _ in range(_MAX_SCRAPES):
            with loopback_client(server.origin) as client:
                scraped_by.add(client.get("/v3/pid").json()["pid"])
                text = client.get("/metrics").text
            totals.append(sum(float(value) for value in _PID_ROUTE_COUNT.findall(text)))
            if len(scraped_by) == 2:
                break
        # Each scrape also counted one more /v3/pid request; all scrapes agree on the sum so far.
        assert min(totals) >= REQUESTS
        assert max(totals) == REQUESTS + len(totals)
        assert len(scraped_by) == 2, "the scrapes were answered by both workers"


def test_a_killed_workers_counts_survive_its_death(gateway_group: GatewayGroup) -> None:
    with gateway_group() as server:
        served_by: dict[int, int] = {}
        for _ in range(60):
            with loopback_client(server.origin) as client:
                pid = client.get("/v3/pid").json()["pid"]
            served_by[pid] = served_by.get(pid, 0) + 1
        victim = min(served_by)
        os.kill(victim, signal.SIGKILL)
        respawned = wait_for(lambda: victim not in worker_pids(server) and len(worker_pids(server)) == 2, 30)
        assert respawned, f"no new worker after killing {victim}: {worker_pids(server)}"
        with loopback_client(server.origin) as client:
            text = client.get("/metrics").text
        # Counters keep what the dead worker served; its live gauges are dropped (child_exit).
        counted = sum(float(value) for value in _PID_ROUTE_COUNT.findall(text))
        assert counted == 60, f"counted {counted} of 60 requests ({served_by})\n{text}"
        assert re.search(r"^gateway_requests_in_flight 1\.0$", text, re.M), (
            f"only the scrape is in flight:\n{text}"
        )


def test_the_arbiters_metrics_port_has_the_usage_by_caller_too(gateway_group: GatewayGroup) -> None:
    metrics_port = closed_port()
    with gateway_group(metrics_port=str(metrics_port)) as server:
        for _ in range(10):
            with loopback_client(server.origin) as client:
                client.get("/v3/pid")

        def counted() -> bool:
            with loopback_client(f"http://{LOOPBACK}:{metrics_port}") as client:
                text = client.get("/metrics").text
            return 'gateway_version_requests_total{caller="anonymous",version="v3"} 10.0' in text

        # Each worker hands its counts over within a second.
        assert wait_for(counted, 10, interval=0.2), server.output()
