"""/internal on a real Gunicorn group over mutual TLS, with certificates from `gateway certs`
and calls from `gateway call`, as the README's walk-through makes them."""

from __future__ import annotations

import json
import sqlite3
import ssl
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.identities import spiffe_id
from tests.servers import ServerProcess, loopback_client, run_gateway, server_environment
from tests.serving.conftest import GatewayGroup, resident_memory_kib, wait_for, worker_pids
from tests.serving.pki import TRUST_DOMAIN, tls_settings

if TYPE_CHECKING:
    from pathlib import Path

SERVICES = ("reporting", "billing", "envoy")
EXPORTED_ITEMS = 100_000
# The export streams page by page; holding the whole catalog would take far more than this.
EXPORT_MEMORY_GROWTH_LIMIT_KIB = 30 * 1024


@dataclass(frozen=True)
class Certificates:
    folder: Path

    def settings(self, mode: str = "mtls") -> dict[str, str]:
        return tls_settings(
            self.folder,
            mode,
            internal_allow=json.dumps(
                {
                    "GET /internal/items/export": [spiffe_id("reporting")],
                    "POST /internal/items/import": [spiffe_id("billing")],
                }
            ),
            trusted_proxies=json.dumps([spiffe_id("envoy")]),
        )

    def client(self, service: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.folder / "ca.pem")
        if service is not None:
            context.load_cert_chain(self.folder / f"{service}.pem", self.folder / f"{service}-key.pem")
        return context

    def environment(self) -> dict[str, str]:
        """What `gateway certs` and `gateway call` see: the CA and the trust domain."""
        environment = server_environment(self.folder)
        environment["GATEWAY_TLS_CA_FILE"] = str(self.folder / "ca.pem")
        environment["GATEWAY_TLS_TRUST_DOMAIN"] = TRUST_DOMAIN
        return environment


def _gateway(
    arguments: list[str], environment: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return run_gateway(arguments, env=environment, cwd=cwd)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA, the server's certificate and three services', made by the project's own CLI."""
    folder = tmp_path_factory.mktemp("certs")
    made = Certificates(folder)
    for command in (["certs", "init"], *(["certs", "issue", service] for service in SERVICES)):
        result = _gateway([*command, "--dir", str(folder)], made.environment(), folder)
        assert result.returncode == 0, result.stderr
    return made


def _call(
    certificates: Certificates, server: ServerProcess, path: str, *options: str
) -> subprocess.CompletedProcess[str]:
    # localhost, not 127.0.0.1: the client verifies the server's name.
    url = server.origin.replace("127.0.0.1", "localhost") + path
    return _gateway(["call", url, *options], certificates.environment(), certificates.folder)


def _item(item_id: int) -> dict[str, object]:
    return {"id": item_id, "name": f"Item {item_id}", "price": {"amount": "2.50"}, "tags": ["imported"]}


def test_allowed_services_import_and_export_with_gateway_call(
    gateway_group: GatewayGroup, certificates: Certificates
) -> None:
    batch = certificates.folder / "batch.json"
    batch.write_text(json.dumps({"items": [_item(number) for number in (3, 1, 2)]}))
    with gateway_group(workers=2, tls=certificates.client("reporting"), **certificates.settings()) as server:
        imported = _call(certificates, server, "/internal/items/import", "--as", "billing", "-d", f"@{batch}")
        again = _call(certificates, server, "/internal/items/import", "--as", "billing", "-d", f"@{batch}")
        exported = _call(certificates, server, "/internal/items/export", "--as", "reporting")
        refused = _call(certificates, server, "/internal/items/export", "--as", "billing")
        with loopback_client(server.origin, certificates.client("reporting")) as client:
            # The catalog's versions see what came in through /internal.
            assert client.get("/v2/items/2").json()["tags"] == ["imported"]
            created = client.post("/v2/items", json={"name": "New", "price": {"amount": "1.00"}})
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["created"] == 3
    assert json.loads(again.stdout)["unchanged"] == 3
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3]
    assert all(line["revision"] == 1 for line in lines)
    # Ids drawn after an import never collide with imported ones.
    assert created.status_code == 201
    assert created.json()["id"] > 3
    assert refused.returncode == 22
    assert json.loads(refused.stdout)["status"] == 403
    # JSON ends its line, whatever the server sent: the next command's output starts on its own.
    assert imported.stdout.endswith("}\n")
    assert refused.stdout.endswith("}\n")
    assert "403 Forbidden" in refused.stderr


def test_mtls_optional_serves_the_catalog_to_anonymous_callers_but_not_internal(
    gateway_group: GatewayGroup, certificates: Certificates
) -> None:
    settings = certificates.settings("mtls-optional")
    with (
        gateway_group(workers=1, tls=certificates.client(None), **settings) as server,
        loopback_client(server.origin, certificates.client(None)) as anonymous,
        loopback_client(server.origin, certificates.client("reporting")) as reporting,
    ):
        assert anonymous.get("/v2/items").status_code == 200
        refused = anonymous.get("/internal/items/export")
        assert reporting.get("/internal/items/export").status_code == 200
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("MutualTLS")


def test_a_forwarded_client_certificate_counts_only_from_the_trusted_proxy(
    gateway_group: GatewayGroup, certificates: Certificates
) -> None:
    forwarded = {"X-Forwarded-Client-Cert": f"By={spiffe_id('envoy')};Hash=9a8b;URI={spiffe_id('reporting')}"}
    with gateway_group(workers=1, tls=certificates.client("reporting"), **certificates.settings()) as server:
        with loopback_client(server.origin, certificates.client("envoy")) as proxy:
            through_proxy = proxy.get("/internal/items/export", headers=forwarded)
        with loopback_client(server.origin, certificates.client("billing")) as billing:
            forged = billing.get("/internal/items/export", headers=forwarded)

        def access_lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in server.stdout.lines() if '"gateway.access"' in line]

        # The server's output is read by a thread: wait for the lines of both requests.
        assert wait_for(
            lambda: (
                any("ignored X-Forwarded-Client-Cert" in line for line in server.stdout.lines())
                and len([entry for entry in access_lines() if entry["path"].startswith("/internal")]) == 2
            ),
            5,
        ), server.output()
        access = access_lines()
    assert through_proxy.status_code == 200
    assert forged.status_code == 403
    identities = {
        (entry["status"], entry["identity"], entry["via"])
        for entry in access
        if entry["path"].startswith("/internal")
    }
    assert identities == {
        (200, spiffe_id("reporting"), spiffe_id("envoy")),
        (403, spiffe_id("billing"), None),
    }


def _seed_items(database: Path, count: int) -> None:
    """Insert ``count`` items straight into the SQLite file the group serves (fast, in one transaction)."""
    # As SQLAlchemy writes UTC datetimes to SQLite: no offset, microseconds.
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    with sqlite3.connect(database, timeout=30) as connection:
        connection.executemany(
            "INSERT INTO items (id, name, description, price_cents, currency, created_at, updated_at, revision)"
            " VALUES (?, ?, ?, ?, 'EUR', ?, ?, 1)",
            ((number, f"Item {number}", "x" * 100, number, now, now) for number in range(1, count + 1)),
        )
    connection.close()


class _PeakMemory:
    """Samples a process's resident memory in a thread while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = resident_memory_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kib = max(self.peak_kib, resident_memory_kib(self.pid))

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_the_export_of_100_000_items_streams_in_flat_memory(
    gateway_group: GatewayGroup, certificates: Certificates, tmp_path: Path
) -> None:
    with gateway_group(workers=1, tls=certificates.client("reporting"), **certificates.settings()) as server:
        _seed_items(tmp_path / "catalog.sqlite3", EXPORTED_ITEMS)
        (worker,) = worker_pids(server)
        with loopback_client(server.origin, certificates.client("reporting")) as client:
            # Warm up: the first export pays for imports and caches that stay.
            with client.stream(
                "GET", "/internal/items/export", params={"after": EXPORTED_ITEMS - 600}
            ) as warm_up:
                assert sum(1 for _ in warm_up.iter_lines()) == 600
            baseline_kib = resident_memory_kib(worker)
            count = last_id = 0
            with _PeakMemory(worker) as memory, client.stream("GET", "/internal/items/export") as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/x-ndjson"
                for line in response.iter_lines():
                    item_id = json.loads(line)["id"]
                    assert item_id > last_id
                    count, last_id = count + 1, item_id
    assert count == EXPORTED_ITEMS
    growth_kib = memory.peak_kib - baseline_kib
    assert growth_kib < EXPORT_MEMORY_GROWTH_LIMIT_KIB, f"the worker grew by {growth_kib} KiB"
