"""The development CA: what its certificates say, how their files are written, and that
OpenSSL (through Python's ssl) accepts and refuses them in a real handshake."""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.tls.certificates import (
    Authority,
    CertifiedKey,
    create_authority,
    describe,
    issue_client_certificate,
    issue_revocation_list,
    issue_server_certificate,
    refuse_to_overwrite,
    service_identity,
    spiffe_identity,
    write_certificate,
    write_private_key,
)

TRUST_DOMAIN = "example.org"
BILLING = "spiffe://example.org/service/billing"
Extension = TypeVar("Extension", bound=x509.ExtensionType)


@dataclass(frozen=True)
class Files:
    authority: Authority
    ca: Path
    server_certificate: Path
    server_key: Path
    directory: Path

    def write_client(self, client: CertifiedKey, name: str = "client") -> tuple[Path, Path]:
        certificate, key = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        write_certificate(certificate, client.pem())
        write_private_key(key, client.key_pem())
        return certificate, key


@pytest.fixture
def authority() -> Authority:
    return create_authority("test CA", valid_days=30)


@pytest.fixture
def files(authority: Authority, tmp_path: Path) -> Files:
    server = issue_server_certificate(authority, ["localhost", "127.0.0.1", "::1"], valid_days=30)
    written = Files(
        authority, tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server-key.pem", tmp_path
    )
    write_certificate(written.ca, authority.pem())
    write_certificate(written.server_certificate, server.pem())
    write_private_key(written.server_key, server.key_pem())
    return written


@pytest.fixture
def umask_zero() -> Iterator[None]:
    # The process umask is global; restored at once so no other test sees it.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _extension(certificate: x509.Certificate, kind: type[Extension]) -> x509.Extension[Extension]:
    return certificate.extensions.get_extension_for_class(kind)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_authority_signs_end_entity_certificates_only(authority: Authority) -> None:
    certificate = authority.certificate
    constraints = _extension(certificate, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = _extension(certificate, x509.KeyUsage)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign, usage.value.digital_signature) == (
        True,
        True,
        False,
    )
    assert _extension(
        certificate, x509.SubjectKeyIdentifier
    ).value == x509.SubjectKeyIdentifier.from_public_key(authority.private_key.public_key())
    certificate.verify_directly_issued_by(certificate)


def test_the_server_certificate_names_ips_as_ip_addresses(authority: Authority) -> None:
    server = issue_server_certificate(
        authority, ["localhost", "127.0.0.1", "::1", "API.internal"], valid_days=5
    )
    names = _extension(server.certificate, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "api.internal"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert list(_extension(server.certificate, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert not _extension(server.certificate, x509.BasicConstraints).value.ca
    assert _extension(server.certificate, x509.KeyUsage).value.digital_signature
    authority_key = _extension(server.certificate, x509.AuthorityKeyIdentifier).value
    assert (
        authority_key.key_identifier
        == _extension(authority.certificate, x509.SubjectKeyIdentifier).value.digest
    )
    server.certificate.verify_directly_issued_by(authority.certificate)


@pytest.mark.parametrize("names", [[], ["not a name"], ["10.0.0.0/8"], ["localhost", "bad_name"]])
def test_the_server_certificate_refuses_what_is_neither_a_dns_name_nor_an_ip(
    authority: Authority, names: list[str]
) -> None:
    with pytest.raises(ValueError, match="DNS name or IP address"):
        issue_server_certificate(authority, names)


def test_the_client_certificate_carries_one_spiffe_uri_and_client_auth(authority: Authority) -> None:
    client = issue_client_certificate(authority, "billing", trust_domain=TRUST_DOMAIN, valid_days=5)
    names = list(_extension(client.certificate, x509.SubjectAlternativeName).value)
    assert names == [x509.UniformResourceIdentifier(BILLING)]
    assert list(_extension(client.certificate, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert spiffe_identity(client.certificate) == BILLING
    client.certificate.verify_directly_issued_by(authority.certificate)


@pytest.mark.parametrize("name", ["", "Billing", "bill_ing", "-billing", "billing.", "..", "a/b", "a" * 64])
def test_a_service_name_outside_the_allowed_characters_is_refused(authority: Authority, name: str) -> None:
    with pytest.raises(ValueError, match="invalid service name"):
        issue_client_certificate(authority, name, trust_domain=TRUST_DOMAIN)


@pytest.mark.parametrize("name", ["a", "billing-v2.eu", "a" * 63])
def test_a_service_name_may_use_letters_digits_dashes_and_dots(name: str) -> None:
    assert service_identity(name, trust_domain=TRUST_DOMAIN) == f"spiffe://{TRUST_DOMAIN}/service/{name}"


def test_a_client_certificate_for_tests_may_have_another_usage_or_be_expired(authority: Authority) -> None:
    server_only = issue_client_certificate(
        authority, "billing", trust_domain=TRUST_DOMAIN, extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert list(_extension(server_only.certificate, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    expired = issue_client_certificate(
        authority,
        "billing",
        trust_domain=TRUST_DOMAIN,
        not_before=datetime.now(UTC) - timedelta(days=10),
        valid_days=1,
    )
    assert expired.certificate.not_valid_after_utc < datetime.now(UTC)


def _signed_with(authority: Authority, names: Sequence[x509.GeneralName] | None) -> x509.Certificate:
    key = authority.private_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone")]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    "names",
    [
        None,
        [x509.DNSName("billing.example.org")],
        [x509.UniformResourceIdentifier("https://example.org/billing")],
        [x509.UniformResourceIdentifier(BILLING), x509.UniformResourceIdentifier(BILLING + "-2")],
        [x509.UniformResourceIdentifier(BILLING), x509.UniformResourceIdentifier("https://example.org/")],
        [x509.UniformResourceIdentifier("spiffe://Example.org/service/billing")],
        [x509.UniformResourceIdentifier("spiffe://example.org/service/../admin")],
    ],
    ids=["no-san", "dns-only", "https-uri", "two-spiffe", "spiffe-and-https", "uppercase-domain", "dot-dot"],
)
def test_no_identity_unless_exactly_one_well_formed_spiffe_uri(
    authority: Authority, names: list[x509.GeneralName] | None
) -> None:
    assert spiffe_identity(_signed_with(authority, names)) is None


def test_the_revocation_list_names_the_revoked_serial(authority: Authority) -> None:
    revoked = issue_client_certificate(authority, "billing", trust_domain=TRUST_DOMAIN)
    kept = issue_client_certificate(authority, "orders", trust_domain=TRUST_DOMAIN)
    crl = x509.load_pem_x509_crl(issue_revocation_list(authority, [revoked.certificate.serial_number]))
    assert crl.issuer == authority.certificate.subject
    assert crl.is_signature_valid(authority.private_key.public_key())
    assert crl.get_revoked_certificate_by_serial_number(revoked.certificate.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(kept.certificate.serial_number) is None


@pytest.mark.usefixtures("umask_zero")
def test_a_key_file_is_owner_only_and_never_overwritten_without_force(tmp_path: Path) -> None:
    key = tmp_path / "service-key.pem"
    write_private_key(key, b"first")
    assert _mode(key) == 0o600
    with pytest.raises(FileExistsError, match=r"service-key\.pem.*--force"):
        write_private_key(key, b"second")
    assert key.read_bytes() == b"first"
    key.chmod(0o644)
    write_private_key(key, b"third", force=True)
    assert key.read_bytes() == b"third"
    assert _mode(key) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["service-key.pem"]  # no temporary left


def test_a_certificate_file_is_readable_by_all_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_certificate(tmp_path / "ca.pem", b"certificate")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "ca.pem") == 0o644
    with pytest.raises(FileExistsError, match="--force"):
        write_certificate(tmp_path / "ca.pem", b"other")
    write_certificate(tmp_path / "ca.pem", b"other", force=True)
    assert (tmp_path / "ca.pem").read_bytes() == b"other"
    assert _mode(tmp_path / "ca.pem") == 0o644


def test_every_file_is_checked_before_any_is_written(tmp_path: Path) -> None:
    (tmp_path / "server.pem").write_bytes(b"kept")
    targets = [tmp_path / "ca.pem", tmp_path / "server.pem"]
    with pytest.raises(FileExistsError, match=r"server\.pem"):
        refuse_to_overwrite(targets, force=False)
    refuse_to_overwrite(targets, force=True)


def test_the_authority_loads_from_its_files(files: Files) -> None:
    key = files.directory / "ca-key.pem"
    write_private_key(key, files.authority.key_pem(b"secret"))
    loaded = Authority.load(files.ca, key, b"secret")
    assert loaded.certificate == files.authority.certificate
    with pytest.raises(ValueError, match="not a usable private key"):
        Authority.load(files.ca, key, None)
    with pytest.raises(ValueError, match="is not the key of"):
        Authority.load(files.ca, files.server_key)
    with pytest.raises(ValueError, match="not a CA certificate"):
        Authority.load(files.server_certificate, files.server_key)
    with pytest.raises(ValueError, match="not a PEM certificate"):
        Authority.load(key, key, b"secret")


def test_describe_tells_names_identity_issuer_and_expiry(files: Files) -> None:
    client = issue_client_certificate(files.authority, "billing", trust_domain=TRUST_DOMAIN, valid_days=10)
    certificate, _ = files.write_client(client)
    described = describe(certificate)
    assert described["subject"] == "CN=billing"
    assert described["issuer"] == "CN=test CA"
    assert described["serial"] == client.certificate.serial_number
    assert described["uris"] == [BILLING]
    assert described["identity"] == BILLING
    assert described["days_left"] == 9  # Backdated a few minutes for clock skew.
    assert described["not_after"] == client.certificate.not_valid_after_utc
    assert described["extended_key_usage"] == ["clientAuth"]
    assert described["key_usage"] == ["digital_signature"]
    assert not described["is_ca"]
    server = describe(files.server_certificate)
    assert (server["dns_names"], server["ip_addresses"], server["identity"]) == (
        ["localhost"],
        ["127.0.0.1", "::1"],
        None,
    )
    assert describe(files.ca)["key_usage"] == ["key_cert_sign", "crl_sign"]


# A real handshake: Python's ssl over memory buffers, no sockets needed.


def _server_context(files: Files, *extra_verify_locations: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    # Python 3.13's default; it checks the extensions RFC 5280 requires of a CA and its leaves.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(files.ca)
    for location in extra_verify_locations:
        context.load_verify_locations(location)
    context.load_cert_chain(files.server_certificate, files.server_key)
    return context


def _client_context(files: Files, certificate: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(files.ca)
    context.load_cert_chain(certificate, key)
    return context


def _handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, hostname: str
) -> ssl.SSLObject:
    """Both sides' handshake to the end; the server's end of the connection."""
    client_incoming, client_outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_incoming, server_outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_incoming, client_outgoing, server_hostname=hostname)
    server = server_context.wrap_bio(server_incoming, server_outgoing, server_side=True)
    finished = {"client": False, "server": False}
    for _ in range(10):
        for side, endpoint in (("client", client), ("server", server)):
            if not finished[side]:
                try:
                    endpoint.do_handshake()
                    finished[side] = True
                except ssl.SSLWantReadError:
                    pass
        server_incoming.write(client_outgoing.read())
        client_incoming.write(server_outgoing.read())
        if all(finished.values()):
            return server
    raise AssertionError(f"the handshake did not finish: {finished}")


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"])
def test_the_server_sees_the_client_identity_in_a_real_handshake(files: Files, hostname: str) -> None:
    client = issue_client_certificate(files.authority, "billing", trust_domain=TRUST_DOMAIN)
    server = _handshake(_server_context(files), _client_context(files, *files.write_client(client)), hostname)
    peer = server.getpeercert()
    assert peer is not None
    assert peer["subjectAltName"] == (("URI", BILLING),)


def test_a_client_certificate_from_another_ca_is_refused(files: Files) -> None:
    stranger = issue_client_certificate(create_authority("another CA"), "billing", trust_domain=TRUST_DOMAIN)
    client_context = _client_context(files, *files.write_client(stranger))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(_server_context(files), client_context, "localhost")


def test_a_certificate_without_client_auth_is_refused_as_a_client(files: Files) -> None:
    server_only = issue_client_certificate(
        files.authority,
        "billing",
        trust_domain=TRUST_DOMAIN,
        extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client_context = _client_context(files, *files.write_client(server_only))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate purpose"):
        _handshake(_server_context(files), client_context, "localhost")


def test_an_expired_client_certificate_is_refused(files: Files) -> None:
    expired = issue_client_certificate(
        files.authority,
        "billing",
        trust_domain=TRUST_DOMAIN,
        not_before=datetime.now(UTC) - timedelta(days=10),
        valid_days=1,
    )
    client_context = _client_context(files, *files.write_client(expired))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        _handshake(_server_context(files), client_context, "localhost")


def test_the_revocation_list_is_enforced_by_openssl(files: Files) -> None:
    revoked = issue_client_certificate(files.authority, "billing", trust_domain=TRUST_DOMAIN)
    kept = issue_client_certificate(files.authority, "orders", trust_domain=TRUST_DOMAIN)
    crl = files.directory / "crl.pem"
    crl.write_bytes(issue_revocation_list(files.authority, [revoked.certificate.serial_number]))
    server_context = _server_context(files, crl)
    server_context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    _handshake(server_context, _client_context(files, *files.write_client(kept, "orders")), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate revoked"):
        _handshake(
            server_context, _client_context(files, *files.write_client(revoked, "billing")), "localhost"
        )
