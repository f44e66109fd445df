"""Readiness reports the CRL's nextUpdate: past it, OpenSSL refuses every client certificate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.health import ProbeReport
from gateway.tls.certificates import Authority, create_authority, issue_revocation_list
from gateway.tls.expiry import crl_expiry_check, expiry_check, revocation_list_validity

pytestmark = pytest.mark.anyio


@pytest.fixture
def authority() -> Authority:
    return create_authority("CRL test CA")


def _crl(authority: Authority, last_update: datetime, next_update: datetime) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(last_update)
        .next_update(next_update)
        .sign(authority.private_key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM)


async def _probe(path: Path) -> ProbeReport:
    report = await crl_expiry_check(path).probe()
    assert isinstance(report, ProbeReport)
    return report


async def test_a_fresh_crl_passes(tmp_path: Path, authority: Authority) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_bytes(issue_revocation_list(authority, [], valid_days=7))
    report = await _probe(crl)
    assert report.status == "pass"
    assert "next update due" in report.output


async def test_a_crl_in_its_last_quarter_warns(tmp_path: Path, authority: Authority) -> None:
    now = datetime.now(UTC)
    crl = tmp_path / "crl.pem"
    crl.write_bytes(_crl(authority, now - timedelta(days=6), now + timedelta(hours=12)))
    assert (await _probe(crl)).status == "warn"


async def test_a_crl_past_its_next_update_fails(tmp_path: Path, authority: Authority) -> None:
    now = datetime.now(UTC)
    crl = tmp_path / "crl.pem"
    crl.write_bytes(_crl(authority, now - timedelta(days=8), now - timedelta(days=1)))
    with pytest.raises(RuntimeError, match="every client certificate is refused"):
        await crl_expiry_check(crl).probe()


def test_of_several_crls_the_one_due_first_counts(tmp_path: Path, authority: Authority) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    other = create_authority("Another CA")
    crl = tmp_path / "crl.pem"
    crl.write_bytes(
        _crl(authority, now - timedelta(days=1), now + timedelta(days=6))
        + _crl(other, now - timedelta(days=2), now + timedelta(days=2))
    )
    assert revocation_list_validity(crl) == (now - timedelta(days=2), now + timedelta(days=2))


def test_a_file_without_a_crl_is_an_error(tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_text("not a CRL")
    with pytest.raises(ValueError, match="no PEM CRL"):
        revocation_list_validity(crl)


@pytest.mark.parametrize("content", [None, "not a CRL"])
async def test_an_unreadable_crl_warns_rather_than_stopping_the_worker(
    tmp_path: Path, content: str | None
) -> None:
    # Built while a respawned worker starts: raising there would stop the whole Gunicorn group.
    crl = tmp_path / "crl.pem"
    if content is not None:
        crl.write_text(content)
    check = crl_expiry_check(crl)
    report = await check.probe()
    assert check.name == "tls:revocation-list"
    assert isinstance(report, ProbeReport)
    assert report.status == "warn"
    assert "crl.pem" in report.output


async def test_an_unreadable_server_certificate_warns_rather_than_stopping_the_worker(tmp_path: Path) -> None:
    # A worker respawned after the file broke still serves the set-up loaded before.
    report = await expiry_check(tmp_path / "gone.pem", warning_days=14).probe()
    assert isinstance(report, ProbeReport)
    assert report.status == "warn"
    assert "gone.pem" in report.output
