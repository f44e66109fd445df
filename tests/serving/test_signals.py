"""What only a process shows: SIGTERM drains, SIGINT is quick, SIGHUP and SIGKILL lose nothing
that could have been kept. Each test runs ``gateway serve`` with two Gunicorn workers."""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.servers import loopback_client
from tests.serving.conftest import GatewayGroup, wait_for, worker_pids
from tests.serving.traffic import SteadyTraffic

SLOW_REQUESTS = 50


def _slow_request(origin: str, seconds: float) -> httpx.Response:
    with loopback_client(origin) as client:
        return client.get("/v3/slow", params={"seconds": seconds}, timeout=30)


def _in_flight(origin: str) -> float:
    with loopback_client(origin) as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("gateway_requests_in_flight "):
                # The scrape counts itself.
                return float(line.split()[1]) - 1
    return 0.0


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_drains_in_flight_requests_and_exits_zero(gateway_group: GatewayGroup) -> None:
    with gateway_group(prestop_delay="2", graceful_timeout="15") as server:
        with ThreadPoolExecutor(SLOW_REQUESTS) as pool:
            futures = [pool.submit(_slow_request, server.origin, 4) for _ in range(SLOW_REQUESTS)]
            assert wait_for(lambda: _in_flight(server.origin) >= SLOW_REQUESTS, 10), (
                "the slow requests never started"
            )
            sent_term = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)

            # During the pre-stop delay the gateway still answers, but no longer as ready: the
            # worker flips readiness on its next tick (every 0.1 s), well within the delay.
            answers: list[httpx.Response] = []

            def not_ready() -> bool:
                with loopback_client(server.origin) as client:
                    answers.append(client.get("/health/ready"))
                return answers[-1].status_code == 503

            assert wait_for(not_ready, 1.0, interval=0.05), [answer.status_code for answer in answers]
            assert time.monotonic() - sent_term < 2, "readiness turned 503 before the pre-stop delay ended"
            assert answers[-1].json()["output"].startswith("draining")

            responses = [future.result(timeout=30) for future in futures]
        assert [response.status_code for response in responses] == [200] * SLOW_REQUESTS
        assert all(response.json() == {"slept": 4.0} for response in responses)
        # Keep-alive connections that were mid-request are closed after their response.
        assert all(response.headers.get("connection") == "close" for response in responses)

        returncode = server.process.wait(20)
        drain_seconds = time.monotonic() - sent_term
        assert returncode == 0, server.output()
        assert _refuses_connections(server.port)
        print(f"drain: {SLOW_REQUESTS} in-flight requests finished, group exited after {drain_seconds:.2f}s")


def test_sigint_is_a_quick_shutdown(gateway_group: GatewayGroup) -> None:
    with gateway_group(graceful=False) as server, ThreadPoolExecutor(4) as pool:
        stuck = [pool.submit(_slow_request, server.origin, 25) for _ in range(4)]
        assert wait_for(lambda: _in_flight(server.origin) >= 4, 10)
        sent = time.monotonic()
        os.kill(server.process.pid, signal.SIGINT)
        server.process.wait(10)
        elapsed = time.monotonic() - sent
        assert elapsed < 5, f"SIGINT took {elapsed:.1f}s"
        assert server.process.returncode == 0, server.output()
        for future in stuck:
            # Cut, not answered: a quick shutdown does not wait for them.
            if future.exception(timeout=10) is None:
                cut = future.result()
                assert cut.status_code == 503
                assert cut.headers["retry-after"] == "1"


def test_sighup_reloads_with_zero_failed_requests(gateway_group: GatewayGroup) -> None:
    with gateway_group() as server:
        old_workers = worker_pids(server)
        with SteadyTraffic(server.origin, clients=20) as traffic:
            assert traffic.succeeded_since(200, 10)
            os.kill(server.process.pid, signal.SIGHUP)
            replaced = wait_for(
                lambda: not (worker_pids(server) & old_workers) and len(worker_pids(server)) == 2, 20
            )
            assert replaced, f"old workers {old_workers} still there: {worker_pids(server)}"
            assert traffic.succeeded_since(200, 10)
            report = traffic.stop()
        new_workers = worker_pids(server)
        assert report.failures == [], (
            f"{len(report.failures)} of {report.succeeded} failed: {report.failures[:5]}"
        )
        assert new_workers & report.worker_pids, "the new workers served the traffic after the reload"
        assert old_workers & report.worker_pids, "the old workers served the traffic before the reload"
        print(f"HUP: {report.succeeded} requests, 0 failed")


def test_a_killed_worker_is_replaced_and_service_continues(gateway_group: GatewayGroup) -> None:
    with gateway_group() as server:
        victim = min(worker_pids(server))
        with SteadyTraffic(server.origin, clients=10) as traffic:
            assert traffic.succeeded_since(100, 10)
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: victim not in worker_pids(server) and len(worker_pids(server)) == 2, 15)
            failed_during_respawn = len(traffic.report.failures)
            assert traffic.succeeded_since(300, 10)
            report = traffic.stop()
        assert len(report.failures) == failed_during_respawn, "every request after the respawn succeeded"
        respawned = worker_pids(server) - {victim}
        # Which worker accepts a new connection is the kernel's choice: ask until the new one
        # answers (bounded), unless the traffic already reached it.
        served_by = set(report.worker_pids)
        for _ in range(200):
            if respawned & served_by:
                break
            with loopback_client(server.origin) as client:
                served_by.add(client.get("/health").json()["worker"]["pid"])
        assert respawned & served_by, "the new worker serves"
        assert served_by <= worker_pids(server) | {victim}
        print(
            f"SIGKILL: {failed_during_respawn} of {report.succeeded + failed_during_respawn} failed during the respawn"
        )


def test_a_request_still_running_at_the_graceful_timeout_is_cut_and_logged(
    gateway_group: GatewayGroup,
) -> None:
    with gateway_group(graceful_timeout="3") as server, ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(_slow_request, server.origin, 20)
        assert wait_for(lambda: _in_flight(server.origin) >= 1, 10)
        sent = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        cut = stuck.result(timeout=15)
        elapsed = time.monotonic() - sent
        assert server.process.wait(15) == 0
    assert cut.status_code == 503
    assert cut.headers["retry-after"] == "1"
    assert elapsed < 3, f"cut after {elapsed:.1f}s, the graceful timeout is 3 s"
    assert any("request cut before it finished: GET /v3/slow" in line for line in server.stdout.lines())
