"""Rotating TLS files on a running mutual-TLS group: new files and SIGHUP, under traffic,
with no failed request; a CRL that revokes a certificate; files that do not load, which
must leave the running workers serving rather than take the group down."""

from __future__ import annotations

import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.tls.certificates import issue_revocation_list
from tests.servers import ServerProcess, loopback_client
from tests.serving.conftest import GatewayGroup, wait_for, worker_pids
from tests.serving.pki import Pki, get_with_serial, replace_file
from tests.serving.traffic import ThreadedTraffic

# Each traffic loop stops after this many requests, whatever happens: loops are bounded.
MAX_REQUESTS_PER_LOOP = 20_000
# Generous: new workers start and old ones drain on a machine busy with other tests.
ROTATION_TIMEOUT = 45.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


class TLSTraffic(ThreadedTraffic):
    """Two loops requesting /v3/hello until stopped: one on a kept-alive connection, one on
    a new connection (a new handshake) per request. Each outcome is counted."""

    def __init__(self, origin: str, context: ssl.SSLContext) -> None:
        super().__init__([self._kept_alive, self._new_connections])
        self.origin = origin
        self.context = context

    def serial(self, loop: str) -> int | None:
        with self.report.lock:
            return self.report.last_serial.get(loop)

    def _kept_alive(self) -> None:
        with loopback_client(self.origin, self.context) as client:
            for _ in range(MAX_REQUESTS_PER_LOOP):
                if self._stop.is_set():
                    return
                self._request(client, "kept-alive")

    def _new_connections(self) -> None:
        for _ in range(MAX_REQUESTS_PER_LOOP):
            if self._stop.is_set():
                return
            with loopback_client(self.origin, self.context) as client:
                self._request(client, "new")

    def _request(self, client: httpx.Client, loop: str) -> None:
        try:
            response, serial = get_with_serial(client, "/v3/hello")
        except httpx.HTTPError as error:
            with self.report.lock:
                self.report.failures.append(f"{loop}: {type(error).__name__}: {error}")
            return
        with self.report.lock:
            if response.status_code == 200:
                self.report.succeeded += 1
                self.report.last_serial[loop] = serial
            else:
                self.report.failures.append(f"{loop}: {response.status_code}: {response.text[:200]}")


def _new_connection_serial(server: ServerProcess, context: ssl.SSLContext) -> int:
    with loopback_client(server.origin, context) as client:
        return get_with_serial(client, "/v3/hello")[1]


def _logged(server: ServerProcess, text: str) -> Callable[[], bool]:
    return lambda: any(text in line for line in server.stdout.lines())


def _all_workers_replaced(server: ServerProcess, old_pids: set[int], count: int) -> Callable[[], bool]:
    return lambda: len(worker_pids(server) - old_pids) == count and not worker_pids(server) & old_pids


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_new_certificate_files_and_sighup_rotate_without_a_failed_request(
    gateway_group: GatewayGroup, pki: Pki, parser: str
) -> None:
    client = pki.client("billing")
    with gateway_group(workers=2, tls=client, http=parser, **pki.settings("mtls")) as server:
        old_serial = _new_connection_serial(server, client)
        old_pids = worker_pids(server)
        with TLSTraffic(server.origin, client) as traffic:
            assert wait_for(lambda: traffic.report.succeeded >= 50, 20), traffic.report.failures
            new_certificate = pki.server_certificate()
            pki.write("server", new_certificate)
            new_serial = new_certificate.certificate.serial_number
            os.kill(server.process.pid, signal.SIGHUP)
            # Old workers drain, new ones read the new files; both loops move over.
            assert wait_for(lambda: traffic.serial("new") == new_serial, ROTATION_TIMEOUT)
            assert wait_for(_all_workers_replaced(server, old_pids, 2), ROTATION_TIMEOUT)
            assert wait_for(lambda: traffic.serial("kept-alive") == new_serial, ROTATION_TIMEOUT)
            succeeded_at_switch = traffic.report.succeeded
            assert wait_for(lambda: traffic.report.succeeded >= succeeded_at_switch + 50, 20)
        report = traffic.stop()
        assert old_serial != new_serial
        assert report.failures == []
        assert _new_connection_serial(server, client) == new_serial
        print(
            f"rotation ({parser}): {report.succeeded} requests, 0 failed; serial {old_serial:x} -> {new_serial:x}"
        )


def test_a_certificate_revoked_by_a_new_crl_is_refused_after_sighup(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    crl = pki.folder / "revoked.crl.pem"
    crl.write_bytes(issue_revocation_list(pki.authority, []))
    billing = pki.client("billing")
    reports_certificate = pki.client_certificate("reports")
    reports = pki.client("reports", reports_certificate)
    with gateway_group(workers=2, tls=billing, **pki.settings("mtls", tls_crl_file=str(crl))) as server:
        with loopback_client(server.origin, reports) as client:
            assert client.get("/v3/whoami").json()["service"] == "reports"
        old_pids = worker_pids(server)
        replace_file(
            crl, issue_revocation_list(pki.authority, [reports_certificate.certificate.serial_number])
        )
        os.kill(server.process.pid, signal.SIGHUP)
        assert wait_for(_all_workers_replaced(server, old_pids, 2), ROTATION_TIMEOUT)
        for _ in range(4):  # Whichever worker accepts the connection.
            with pytest.raises(httpx.TransportError), loopback_client(server.origin, reports) as client:
                client.get("/v3/hello")
        with loopback_client(server.origin, billing) as client:
            assert client.get("/v3/whoami").json()["service"] == "billing"
        assert wait_for(_logged(server, "certificate revoked"), 5)


def test_sighup_with_files_that_do_not_load_leaves_the_workers_serving(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    client = pki.client("billing")
    with gateway_group(workers=2, tls=client, **pki.settings("mtls")) as server:
        serial = _new_connection_serial(server, client)
        pids = worker_pids(server)
        certificate, key = pki.folder / "server.pem", pki.folder / "server-key.pem"
        original_key = pki.write_mismatched_server_key()
        os.kill(server.process.pid, signal.SIGHUP)
        assert wait_for(
            _logged(server, "SIGHUP ignored, the running workers keep serving: GATEWAY_TLS_KEYFILE"), 10
        )
        assert worker_pids(server) == pids
        assert _new_connection_serial(server, client) == serial
        # No certificate file at all.
        replace_file(key, original_key)
        certificate.unlink()
        os.kill(server.process.pid, signal.SIGHUP)
        assert wait_for(_logged(server, f"GATEWAY_TLS_CERTFILE: {certificate} does not exist"), 10)
        assert worker_pids(server) == pids
        assert _new_connection_serial(server, client) == serial
        # Fixed: the next SIGHUP rotates.
        fixed = pki.server_certificate()
        pki.write("server", fixed)
        os.kill(server.process.pid, signal.SIGHUP)
        assert wait_for(_all_workers_replaced(server, pids, 2), ROTATION_TIMEOUT)
        assert _new_connection_serial(server, client) == fixed.certificate.serial_number


def test_a_worker_replaced_while_the_files_do_not_load_serves_the_old_certificate(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    client = pki.client("billing")
    with gateway_group(workers=2, tls=client, **pki.settings("mtls")) as server:
        serial = _new_connection_serial(server, client)
        pids = worker_pids(server)
        pki.write_mismatched_server_key()
        replaced = min(pids)
        os.kill(replaced, signal.SIGTERM)
        # The arbiter builds the replacement from the broken files, and survives it.
        assert wait_for(
            lambda: len(worker_pids(server) - pids) == 1 and replaced not in worker_pids(server), 30
        )
        assert wait_for(_logged(server, "the new worker serves the certificate loaded before"), 10)
        (new_pid,) = worker_pids(server) - pids

        def reached_new_worker() -> bool:
            with loopback_client(server.origin, client) as http:
                response, presented = get_with_serial(http, "/v3/pid")
                assert presented == serial
                return bool(response.json()["pid"] == new_pid)

        assert wait_for(reached_new_worker, 20)
        assert server.process.poll() is None
