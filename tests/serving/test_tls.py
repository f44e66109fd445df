"""TLS and mutual TLS on a real Gunicorn group, with certificates from the project's issuer."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.client import ClientCertificate, async_client, sync_client
from gateway.tls.certificates import (
    create_authority,
    issue_client_certificate,
    issue_revocation_list,
    issue_server_certificate,
)
from tests.servers import GATEWAY_COMMAND, ServerProcess, loopback_client, server_environment
from tests.serving.conftest import GatewayGroup, wait_for
from tests.serving.pki import TRUST_DOMAIN, Pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


def _logged(server: ServerProcess, text: str) -> bool:
    """Whether the server logs ``text`` within a few seconds (its output is read by a thread)."""
    return wait_for(lambda: any(text in line for line in server.stdout.lines()), 5)


def _refused(origin: str, context: ssl.SSLContext) -> bool:
    try:
        with loopback_client(origin, context) as client:
            client.get("/v3/hello")
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


def test_mtls_admits_only_verified_client_certificates(gateway_group: GatewayGroup, pki: Pki) -> None:
    other_authority = create_authority("Somebody else's CA")
    refused = {
        "no certificate": pki.anonymous(),
        "another CA": pki.client(
            "stranger", issue_client_certificate(other_authority, "stranger", trust_domain=TRUST_DOMAIN)
        ),
        "expired": pki.client(
            "late",
            issue_client_certificate(
                pki.authority,
                "late",
                trust_domain=TRUST_DOMAIN,
                not_before=datetime.now(UTC) - timedelta(days=30),
                valid_days=1,
            ),
        ),
        "serverAuth only": pki.client(
            "impostor",
            issue_client_certificate(
                pki.authority,
                "impostor",
                trust_domain=TRUST_DOMAIN,
                extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
            ),
        ),
    }
    allowed = pki.client("billing")
    with gateway_group(workers=1, tls=allowed, **pki.settings("mtls")) as server:
        for why, context in refused.items():
            assert _refused(server.origin, context), f"a client with {why} got through"
        with loopback_client(server.origin, allowed) as client:
            assert client.get("/v3/whoami").json() == {
                "spiffe_id": f"spiffe://{TRUST_DOMAIN}/service/billing",
                "service": "billing",
            }
            tls = client.get("/v3/tls").json()
        for refusal in (
            "refused: peer did not return a certificate",
            "refused: client certificate refused: certificate has expired",
            "refused: client certificate refused: unable to get local issuer certificate",
            '"identity": "spiffe://gateway.test/service/billing"',
        ):
            assert _logged(server, refusal), refusal
    assert tls["tls_version"] == 0x0304
    assert isinstance(tls["cipher_suite"], int)
    assert tls["client_cert_name"] == "CN=billing"
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")


# The test needs a legacy client on purpose; Python warns that building one is deprecated.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_a_tls_1_1_client_is_refused(gateway_group: GatewayGroup, pki: Pki) -> None:
    legacy = pki.anonymous()
    legacy.minimum_version = legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    # The client's own OpenSSL must be allowed to speak TLS 1.1 for the server to refuse it.
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
    with gateway_group(workers=1, tls=pki.anonymous(), **pki.settings("tls")) as server:
        assert _refused(server.origin, legacy)
        assert _logged(server, "refused: unsupported protocol")


def test_a_revoked_certificate_is_refused_when_a_crl_is_configured(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    revoked = issue_client_certificate(pki.authority, "revoked", trust_domain=TRUST_DOMAIN)
    crl = pki.folder / "revoked.crl.pem"
    crl.write_bytes(issue_revocation_list(pki.authority, [revoked.certificate.serial_number]))
    allowed = pki.client("billing")
    with gateway_group(workers=1, tls=allowed, **pki.settings("mtls", tls_crl_file=str(crl))) as server:
        assert _refused(server.origin, pki.client("revoked", revoked))
        with loopback_client(server.origin, allowed) as client:
            assert client.get("/v3/hello").status_code == 200
            (crl_check,) = client.get("/health").json()["checks"]["tls:revocation-list"]
        assert _logged(server, "certificate revoked")
    assert crl_check["status"] == "pass"


def test_mtls_optional_serves_anonymous_callers_and_identifies_the_others(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    allowed = pki.client("billing")
    with gateway_group(workers=1, tls=pki.anonymous(), **pki.settings("mtls-optional")) as server:
        with loopback_client(server.origin, pki.anonymous()) as anonymous:
            assert anonymous.get("/v2/items").status_code == 200
            refused = anonymous.get("/v3/whoami")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("MutualTLS")
        with loopback_client(server.origin, allowed) as client:
            assert client.get("/v3/whoami").json()["service"] == "billing"


def test_a_key_that_does_not_match_its_certificate_stops_the_start(tmp_path: Path, pki: Pki) -> None:
    other = issue_server_certificate(pki.authority, ["localhost"])
    (pki.folder / "other-key.pem").write_bytes(other.key_pem())
    settings = pki.settings("tls", tls_keyfile=str(pki.folder / "other-key.pem"))
    environment = server_environment(tmp_path)
    environment.update({f"GATEWAY_{name.upper()}": value for name, value in settings.items()})
    result = subprocess.run(
        [str(GATEWAY_COMMAND), "serve", "--host", "127.0.0.1", "--port", "0"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "GATEWAY_TLS_KEYFILE" in result.stderr
    assert "is not the key of" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_and_metrics_report_the_server_certificate_expiry(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    pki.write("server", issue_server_certificate(pki.authority, ["localhost", "127.0.0.1"], valid_days=10))
    with (
        gateway_group(
            workers=1, tls=pki.anonymous(), **pki.settings("tls", tls_expiry_warning_days="30")
        ) as server,
        loopback_client(server.origin, pki.anonymous()) as client,
    ):
        ready = client.get("/health/ready")
        summary = client.get("/health").json()
        metrics = client.get("/metrics").text
    # Ten days left, warned from thirty: ready, with a warning.
    assert ready.status_code == 200
    assert ready.json()["status"] == "warn"
    (check,) = summary["checks"]["tls:server-certificate"]
    assert check["status"] == "warn"
    assert check["output"].startswith("9 days left")
    assert "gateway_tls_certificate_expiry_timestamp_seconds 1." in metrics


def test_the_client_library_presents_its_certificate(gateway_group: GatewayGroup, pki: Pki) -> None:
    billing_cert, billing_key = pki.write(
        "billing", issue_client_certificate(pki.authority, "billing", trust_domain=TRUST_DOMAIN)
    )
    certificate = ClientCertificate(pki.folder / "ca.pem", billing_cert, billing_key)
    with gateway_group(workers=1, tls=certificate.ssl_context(), **pki.settings("mtls")) as server:
        # "localhost", not 127.0.0.1: hostname verification is on and the name is in the SANs.
        origin = server.origin.replace("127.0.0.1", "localhost")
        with sync_client(certificate, base_url=origin) as client:
            assert client.get("/v3/whoami").json()["service"] == "billing"

        async def call() -> str | None:
            async with async_client(certificate, base_url=origin) as client:
                service: str | None = (await client.get("/v3/whoami")).json()["service"]
                return service

        assert asyncio.run(call()) == "billing"
