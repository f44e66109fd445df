"""``gateway certs``, run as a user runs it: a real process in a fresh folder."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from gateway.settings import Settings
from gateway.tls.certificates import describe
from tests.servers import environment_without_gateway_settings, run_gateway

SERVER_FILES = {"ca.pem": 0o644, "ca-key.pem": 0o600, "server.pem": 0o644, "server-key.pem": 0o600}


def _run(cwd: Path, *arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    # The child gets its own copy of the environment, without the caller's GATEWAY_ settings.
    environment = environment_without_gateway_settings()
    environment.update(variables)
    return run_gateway(["certs", *arguments], env=environment, cwd=cwd, timeout=30)


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _assert_readable_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode in {1, 2}, result
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


def test_init_writes_the_files_serve_reads_by_default(tmp_path: Path) -> None:
    result = _run(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    certs = tmp_path / "certs"
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in certs.iterdir()} == SERVER_FILES
    # The Settings defaults, relative to the same working directory, name these very files.
    for setting in ("tls_certfile", "tls_keyfile", "tls_ca_file"):
        assert (tmp_path / Settings.model_fields[setting].default).is_file()
    for name in SERVER_FILES:
        assert f"wrote certs/{name}" in result.stdout
    assert "localhost, 127.0.0.1, ::1" in result.stdout
    assert "GATEWAY_TLS_MODE=mtls gateway serve" in result.stdout
    server = describe(certs / "server.pem")
    assert (server["dns_names"], server["ip_addresses"]) == (["localhost"], ["127.0.0.1", "::1"])


def test_init_adds_the_configured_server_names(tmp_path: Path) -> None:
    result = _run(
        tmp_path, "init", "--dir", "tls", GATEWAY_TLS_SERVER_NAMES='["gateway.internal", "10.0.0.7"]'
    )
    assert result.returncode == 0, result.stderr
    server = describe(tmp_path / "tls" / "server.pem")
    assert server["dns_names"] == ["localhost", "gateway.internal"]
    assert server["ip_addresses"] == ["127.0.0.1", "::1", "10.0.0.7"]
    # Outside the default folder, the next step names the settings serve then needs.
    assert "GATEWAY_TLS_CA_FILE=tls/ca.pem" in result.stdout


def test_a_second_init_changes_nothing_without_force(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    before = _contents(tmp_path / "certs")
    _assert_readable_failure(_run(tmp_path, "init"), "already exists", "--force")
    assert _contents(tmp_path / "certs") == before

    result = _run(tmp_path, "init", "--force")
    assert result.returncode == 0, result.stderr
    after = _contents(tmp_path / "certs")
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "certs").iterdir()}
    assert modes == SERVER_FILES


def test_issue_writes_a_client_certificate_and_prints_its_identity(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    result = _run(tmp_path, "issue", "billing", GATEWAY_TLS_TRUST_DOMAIN="example.org")
    assert result.returncode == 0, result.stderr
    assert "spiffe://example.org/service/billing" in result.stdout
    certificate, key = tmp_path / "certs" / "billing.pem", tmp_path / "certs" / "billing-key.pem"
    assert stat.S_IMODE(certificate.stat().st_mode) == 0o644
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert describe(certificate)["identity"] == "spiffe://example.org/service/billing"

    _assert_readable_failure(_run(tmp_path, "issue", "billing"), "billing.pem already exists", "--force")
    assert _run(tmp_path, "issue", "billing", "--force").returncode == 0


def test_show_prints_the_identity_and_the_expiry(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    assert _run(tmp_path, "issue", "orders", "--days", "30").returncode == 0
    result = _run(tmp_path, "show", "certs/orders.pem")
    assert result.returncode == 0, result.stderr
    assert "identity:" in result.stdout
    assert "spiffe://gateway.local/service/orders" in result.stdout
    assert "(29 days left)" in result.stdout  # Backdated a few minutes for clock skew.
    assert "issuer:" in result.stdout
    assert "gateway development CA" in result.stdout


def test_issue_before_init_says_what_to_run(tmp_path: Path) -> None:
    _assert_readable_failure(_run(tmp_path, "issue", "billing"), "run `gateway certs init` first")
    assert not (tmp_path / "certs" / "billing.pem").exists()


def test_mistakes_get_one_readable_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a certificate")
    _assert_readable_failure(_run(tmp_path, "show", "missing.pem"), "missing.pem: no such file")
    _assert_readable_failure(_run(tmp_path, "show", "notes.txt"), "notes.txt: not a PEM certificate")
    assert _run(tmp_path, "init").returncode == 0
    _assert_readable_failure(_run(tmp_path, "issue", "Billing_Service"), "invalid service name")
    _assert_readable_failure(_run(tmp_path, "issue", "ca", "--force"), "would overwrite")
    _assert_readable_failure(_run(tmp_path, "init", "--days", "0"), "--days")
