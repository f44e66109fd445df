"""Gunicorn process groups for the serving tests: ``gateway serve`` with two workers."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.conftest import catalog_versions, probe_version
from tests.servers import (
    GUNICORN_CLEAN_STOP,
    ServerProcess,
    gateway_serve_command,
    running_server,
    server_environment,
)

GatewayGroup = Callable[..., AbstractContextManager[ServerProcess]]


def worker_pids(server: ServerProcess) -> set[int]:
    """The arbiter's live children, from /proc."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    try:
        return {int(pid) for pid in children.read_text().split()}
    except OSError:
        return set()


def resident_memory_kib(pid: int, *, peak: bool = False) -> int:
    """The process's resident memory now (VmRSS) or at its highest so far (VmHWM)."""
    field = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (bounded in time and count)."""
    deadline = time.monotonic() + timeout
    for _attempt in range(int(timeout / interval) + 1):
        if condition():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    return condition()


@pytest.fixture
def gateway_group(tmp_path: Path) -> GatewayGroup:
    """Start ``gateway serve`` (Gunicorn, 2 workers) with the catalog and the probe version."""

    @contextmanager
    def start(
        *, workers: int = 2, graceful: bool = True, tls: ssl.SSLContext | None = None, **settings: str
    ) -> Iterator[ServerProcess]:
        """``settings`` are Settings field names (``prestop_delay="2"``), passed as GATEWAY_* variables."""
        environment = server_environment(
            tmp_path, versions=[*catalog_versions(), probe_version("/v3")], **settings
        )
        with running_server(
            gateway_serve_command(workers),
            environment,
            tmp_path,
            clean_stop=GUNICORN_CLEAN_STOP,
            graceful=graceful,
            tls=tls,
        ) as server:
            # Ready means one worker answered; wait for every worker to be up.
            assert wait_for(lambda: len(worker_pids(server)) == workers, 15), server.output()
            yield server

    return start
