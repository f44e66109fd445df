"""Steady traffic from keep-alive clients, counted: what a load balancer's users would see."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import httpx

from tests.servers import loopback_client

# Each client stops after this many requests, whatever happens: loops are bounded.
MAX_REQUESTS_PER_CLIENT = 20_000


@dataclass
class TrafficReport:
    succeeded: int = 0
    failures: list[str] = field(default_factory=list)
    worker_pids: set[int] = field(default_factory=set)
    # The serial of the server certificate last seen by each loop (TLS traffic).
    last_serial: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ThreadedTraffic:
    """Client loops in daemon threads, started on entering, stopped (and joined) on leaving;
    each loop checks ``_stop`` between requests."""

    def __init__(self, loops: list[Callable[[], None]]) -> None:
        self.report = TrafficReport()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in loops]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> TrafficReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        return self.report


class SteadyTraffic(ThreadedTraffic):
    """``clients`` threads, each one keep-alive connection, requesting ``path`` until stopped."""

    def __init__(self, origin: str, *, clients: int = 20, path: str = "/v3/pid") -> None:
        super().__init__([self._run] * clients)
        self.origin = origin
        self.path = path

    def succeeded_since(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` more requests than now have succeeded."""
        target = self.report.succeeded + count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.report.succeeded >= target:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        with loopback_client(self.origin) as client:
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if self._stop.is_set():
                    return
                self._request(client)

    def _request(self, client: httpx.Client) -> None:
        try:
            response = client.get(self.path)
        except httpx.HTTPError as error:
            with self.report.lock:
                self.report.failures.append(f"{type(error).__name__}: {error}")
            return
        with self.report.lock:
            if response.status_code == 200:
                self.report.succeeded += 1
                if self.path.endswith("/pid"):
                    self.report.worker_pids.add(response.json()["pid"])
            else:
                self.report.failures.append(f"{response.status_code}: {response.text[:200]}")
