"""The ASGI TLS extension on a real mutual-TLS server: over either HTTP parser, on wss://
WebSocket connections, and under ``gateway dev`` as under ``gateway serve``."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import probe_version
from tests.identities import spiffe_id
from tests.servers import (
    GATEWAY_COMMAND,
    LOOPBACK,
    START_TIMEOUT,
    STOP_TIMEOUT,
    loopback_client,
    server_environment,
)
from tests.serving.conftest import GatewayGroup, wait_for
from tests.serving.pki import Pki

BILLING = spiffe_id("billing")
_DEV_LISTENING = re.compile(rf"Uvicorn running on https://{re.escape(LOOPBACK)}:(\d+)")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


def _check(extension: dict[str, Any], pki: Pki) -> None:
    assert extension["client_cert_name"] == "CN=billing"
    assert extension["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert extension["client_cert_error"] is None
    assert extension["server_cert"] == (pki.folder / "server.pem").read_text()
    assert extension["tls_version"] == 0x0304
    assert isinstance(extension["cipher_suite"], int)


def _check_both(origin: str, client: ssl.SSLContext, pki: Pki) -> None:
    with loopback_client(origin, client) as http:
        _check(http.get("/v3/tls").json(), pki)
        assert http.get("/v3/whoami").json()["spiffe_id"] == BILLING
    with connect(
        origin.replace("https://", "wss://") + "/v3/ws/tls", ssl=client, open_timeout=10
    ) as websocket:
        message = json.loads(websocket.recv(timeout=10))
    _check(message["tls"], pki)
    assert message["spiffe_id"] == BILLING


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_requests_and_websockets_carry_the_tls_extension(
    gateway_group: GatewayGroup, pki: Pki, parser: str
) -> None:
    client = pki.client("billing")
    with gateway_group(workers=1, tls=client, http=parser, **pki.settings("mtls")) as server:
        _check_both(server.origin, client, pki)


@contextmanager
def _gateway_dev(folder: Path, environment: dict[str, str]) -> Iterator[str]:
    """``gateway dev`` (Uvicorn with its reloader) until the block ends; yields its origin."""
    log = folder / "dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(GATEWAY_COMMAND), "dev", "--host", LOOPBACK, "--port", "0"],
            cwd=folder,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        found: list[str] = []

        def listening() -> bool:
            found.extend(_DEV_LISTENING.findall(log.read_text()))
            return bool(found) or process.poll() is not None

        wait_for(listening, START_TIMEOUT)
        assert found, log.read_text()
        yield f"https://{LOOPBACK}:{found[0]}"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
    assert process.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()


def test_gateway_dev_carries_the_tls_extension_too(tmp_path: Path, pki: Pki) -> None:
    client = pki.client("billing")
    environment = server_environment(tmp_path, versions=[probe_version("/v3")], **pki.settings("mtls"))
    with _gateway_dev(tmp_path, environment) as origin:
        # The reloader binds the socket before its server process has loaded the app.
        def answers() -> bool:
            with loopback_client(origin, client) as http:
                try:
                    return http.get("/health/live").status_code == 200
                except httpx.TransportError:
                    return False

        assert wait_for(answers, START_TIMEOUT), (tmp_path / "dev.log").read_text()
        _check_both(origin, client, pki)
