"""The mtls overlay's tls-reload sidecar (deploy/overlays/mtls/reload_on_renewal.py) against a
real `gateway serve` group: its TLS files mounted the way the kubelet mounts a Secret (files
linked through ``..data``, swapped in one rename), a renewal swapped in, and the running
arbiter serving the new certificate on new connections, without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import catalog_versions
from tests.deploy.files import OVERLAYS_DIR
from tests.servers import (
    GUNICORN_CLEAN_STOP,
    ServerProcess,
    gateway_serve_command,
    loopback_client,
    running_server,
    server_environment,
)
from tests.serving.conftest import wait_for
from tests.serving.pki import Pki, get_with_serial, tls_settings

RELOADER = OVERLAYS_DIR / "mtls" / "reload_on_renewal.py"
SECRET_FILES = ("server.pem", "server-key.pem", "ca.pem")
POLL_INTERVAL = 0.2
# Generous: the new worker starts and the old one drains on a machine busy with other tests.
RELOAD_TIMEOUT = 45.0


def project_secret(volume: Path, files: dict[str, bytes], version: str) -> None:
    """Write ``files`` as the kubelet's atomic writer does: a new timestamped folder, then
    ``..data`` renamed to point at it; the visible names link through ``..data``."""
    payload = volume / f"..{version}"
    payload.mkdir()
    for name, content in files.items():
        (payload / name).write_bytes(content)
    (volume / "..data_tmp").symlink_to(payload.name)
    os.replace(volume / "..data_tmp", volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")


def secret_files(pki: Pki, server_pem: bytes, server_key: bytes) -> dict[str, bytes]:
    return {
        "server.pem": server_pem,
        "server-key.pem": server_key,
        "ca.pem": (pki.folder / "ca.pem").read_bytes(),
    }


def _start_sidecar(volume: Path, pid_file: Path, log: Path) -> subprocess.Popen[bytes]:
    looks = int(RELOAD_TIMEOUT * 4 / POLL_INTERVAL)  # Bounded: it stops by itself.
    command = [sys.executable, str(RELOADER), "--watch", str(volume), "--pid-file", str(pid_file)]
    with log.open("wb") as output:
        return subprocess.Popen(
            [*command, "--interval", str(POLL_INTERVAL), "--iterations", str(looks)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _serial(server: ServerProcess) -> int:
    # A new client, so a new connection and handshake: what a peer sees after the reload.
    with loopback_client(server.origin, server.tls) as client:
        response, serial = get_with_serial(client, "/health/live")
    assert response.status_code == 200
    return serial


def test_a_renewed_secret_reaches_the_running_gateway_without_a_restart(tmp_path: Path) -> None:
    volume, pid_file, log = tmp_path / "certs", tmp_path / "run" / "gunicorn.pid", tmp_path / "tls-reload.log"
    volume.mkdir()
    pid_file.parent.mkdir()
    pki = Pki.create(tmp_path / "pki")
    project_secret(
        volume,
        secret_files(
            pki, (pki.folder / "server.pem").read_bytes(), (pki.folder / "server-key.pem").read_bytes()
        ),
        "2026_12_03_09_00_00.1",
    )
    environment = server_environment(
        tmp_path, versions=catalog_versions(), **tls_settings(volume, "mtls-optional")
    )
    environment["GUNICORN_CMD_ARGS"] = f"--pid {pid_file}"
    with running_server(
        gateway_serve_command(workers=1),
        environment,
        tmp_path,
        clean_stop=GUNICORN_CLEAN_STOP,
        tls=pki.anonymous(),
    ) as server:
        sidecar = _start_sidecar(volume, pid_file, log)
        try:
            # Its first look is the baseline: a change before it would go unseen.
            assert wait_for(lambda: "watching TLS files" in log.read_text(), 15), log.read_text()
            first = _serial(server)
            renewed = pki.server_certificate()
            project_secret(
                volume, secret_files(pki, renewed.pem(), renewed.key_pem()), "2026_12_03_10_00_00.2"
            )

            assert wait_for(
                lambda: _serial(server) == renewed.certificate.serial_number, RELOAD_TIMEOUT, 0.5
            ), f"{log.read_text()}\n{server.output()}"
            assert first != renewed.certificate.serial_number
            # Reloaded in place: the same arbiter, never restarted.
            assert int(pid_file.read_text()) == server.process.pid
            assert server.process.poll() is None
            assert "sent SIGHUP to the gateway" in log.read_text()
        finally:
            sidecar.terminate()
            sidecar.wait(10)
