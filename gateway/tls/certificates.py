"""The project's own development CA: keys, certificates, revocation lists, and their files.

A service's identity is the one URI SAN of its client certificate,
``spiffe://<trust domain>/service/<name>``. trustme cannot write URI SANs, hence this issuer.
Keys are ECDSA P-256; a CA loaded from files may also hold an RSA key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self, TypeAlias, TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_AUTHORITY_DAYS = 3650
DEFAULT_CERTIFICATE_DAYS = 365
KEY_FILE_MODE = 0o600
CERTIFICATE_FILE_MODE = 0o644
# Certificates start a little in the past, so a peer whose clock is slightly behind accepts them.
CLOCK_SKEW = timedelta(minutes=5)
SERVICE_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")
TRUST_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
DNS_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
# SPIFFE ID syntax: lowercase trust domain; path segments never "." or "..".
SPIFFE_ID = re.compile(r"spiffe://[a-z0-9._-]+(/(?!\.\.?(/|$))[A-Za-z0-9._-]+)*")
EXTENDED_KEY_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
KEY_USAGE_NAMES = [
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
]


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate and its private key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if password is None
            else serialization.BestAvailableEncryption(password)
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


@dataclass(frozen=True)
class Authority(CertifiedKey):
    """A CA certificate and the key that signs with it."""

    @classmethod
    def load(cls, cert_path: Path, key_path: Path, password: bytes | None = None) -> Self:
        certificate = load_certificate(cert_path)
        try:
            private_key = serialization.load_pem_private_key(key_path.read_bytes(), password)
        except (TypeError, ValueError) as error:  # TypeError: a password missing or not needed.
            raise ValueError(f"{key_path}: not a usable private key ({error})") from None
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{key_path}: only ECDSA and RSA keys are supported")
        if _public_bytes(private_key) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ValueError(f"{key_path} is not the key of {cert_path}")
        if not _is_ca(certificate):
            raise ValueError(f"{cert_path} is not a CA certificate")
        return cls(certificate, private_key)


class CertificateDescription(TypedDict):
    subject: str
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    days_left: int
    dns_names: list[str]
    ip_addresses: list[str]
    uris: list[str]
    identity: str | None
    is_ca: bool
    key_usage: list[str]
    extended_key_usage: list[str]


def create_authority(
    common_name: str, *, valid_days: int = DEFAULT_AUTHORITY_DAYS, not_before: datetime | None = None
) -> Authority:
    """A new key and its self-signed CA certificate, which may sign only end-entity certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start, end = _validity(not_before, valid_days)
    key_identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(key_identifier, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_identifier), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def issue_server_certificate(
    authority: Authority,
    names: Sequence[str],
    *,
    valid_days: int = DEFAULT_CERTIFICATE_DAYS,
    not_before: datetime | None = None,
) -> CertifiedKey:
    """A server certificate for DNS names and IP addresses (``127.0.0.1``, ``::1``: IPAddress SANs)."""
    if not names:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    alternative_names = list(dict.fromkeys(_server_name(name) for name in names))
    key = ec.generate_private_key(ec.SECP256R1())
    # Only the SANs matter to verifiers; the common name is for people (and at most 64 characters).
    common_name = names[0] if len(names[0]) <= 64 else "gateway server"
    certificate = (
        _end_entity(authority, common_name, key, not_before, valid_days)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(authority.private_key, hashes.SHA256())
    )
    return CertifiedKey(certificate, key)


def issue_client_certificate(
    authority: Authority,
    service_name: str,
    *,
    trust_domain: str,
    valid_days: int = DEFAULT_CERTIFICATE_DAYS,
    not_before: datetime | None = None,
    extended_key_usage: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
) -> CertifiedKey:
    """A client certificate whose one URI SAN is the service's SPIFFE ID.

    Tests may pass another ``extended_key_usage`` (empty: no EKU extension at all) or a
    ``not_before`` far enough in the past for the certificate to have expired.
    """
    identity = service_identity(service_name, trust_domain=trust_domain)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _end_entity(authority, service_name, key, not_before, valid_days).add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=False
    )
    if extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    return CertifiedKey(builder.sign(authority.private_key, hashes.SHA256()), key)


def issue_revocation_list(
    authority: Authority, revoked_serials: Iterable[int], *, valid_days: int = 7
) -> bytes:
    """A PEM CRL, signed by the CA, that revokes these certificate serial numbers."""
    last_update, next_update = _validity(None, valid_days)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(last_update)
        .next_update(next_update)
        .add_extension(_authority_key_identifier(authority), critical=False)
        .add_extension(x509.CRLNumber(time.time_ns()), critical=False)
    )
    for serial in revoked_serials:
        revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last_update).build()
        builder = builder.add_revoked_certificate(revoked)
    crl = builder.sign(authority.private_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def service_identity(service_name: str, *, trust_domain: str) -> str:
    """``spiffe://<trust domain>/service/<service name>``, after checking both parts."""
    if not SERVICE_NAME.fullmatch(service_name):
        raise ValueError(
            f"invalid service name {service_name!r}: use 1 to 63 lowercase letters, digits, '-' "
            "and '.', starting and ending with a letter or digit"
        )
    if not TRUST_DOMAIN.fullmatch(trust_domain):
        raise ValueError(f"invalid trust domain {trust_domain!r}: use lowercase letters, digits, '-' and '.'")
    return f"spiffe://{trust_domain}/service/{service_name}"


def spiffe_identity(certificate: x509.Certificate) -> str | None:
    """The certificate's SPIFFE ID; None unless it has exactly one URI SAN, a SPIFFE ID."""
    uris = _alternative_names(certificate).get_values_for_type(x509.UniformResourceIdentifier)
    # Deny by default: an X.509-SVID has exactly one URI SAN (SPIFFE X509-SVID specification, 2).
    if len(uris) != 1 or not SPIFFE_ID.fullmatch(uris[0]):
        return None
    return uris[0]


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file."""
    data = path.read_bytes()
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise ValueError(f"{path}: not a PEM certificate") from None


def describe(path: Path) -> CertificateDescription:
    """What ``gateway certs show`` prints about the (first) certificate in a PEM file."""
    certificate = load_certificate(path)
    not_after = certificate.not_valid_after_utc
    extensions = certificate.extensions
    alternative_names = _alternative_names(certificate)
    try:
        key_usage = extensions.get_extension_for_class(x509.KeyUsage).value
        key_usage_names = [name for name in KEY_USAGE_NAMES if getattr(key_usage, name)]
    except x509.ExtensionNotFound:
        key_usage_names = []
    try:
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usage_names = [EXTENDED_KEY_USAGE_NAMES.get(usage, usage.dotted_string) for usage in usages]
    except x509.ExtensionNotFound:
        usage_names = []
    return CertificateDescription(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial=certificate.serial_number,
        not_before=certificate.not_valid_before_utc,
        not_after=not_after,
        days_left=(not_after - datetime.now(UTC)) // timedelta(days=1),
        dns_names=alternative_names.get_values_for_type(x509.DNSName),
        ip_addresses=[str(address) for address in alternative_names.get_values_for_type(x509.IPAddress)],
        uris=alternative_names.get_values_for_type(x509.UniformResourceIdentifier),
        identity=spiffe_identity(certificate),
        is_ca=_is_ca(certificate),
        key_usage=key_usage_names,
        extended_key_usage=usage_names,
    )


def refuse_to_overwrite(paths: Iterable[Path], *, force: bool) -> None:
    """Fail on the first existing file unless ``force``: check every file before writing any."""
    for path in paths:
        if not force and (path.exists() or path.is_symlink()):
            raise FileExistsError(_exists_message(path))


def write_private_key(path: Path, pem: bytes, *, force: bool = False) -> None:
    """Write a key readable by its owner only, from the moment the file exists."""
    _write_file(path, pem, mode=KEY_FILE_MODE, force=force)


def write_certificate(path: Path, pem: bytes, *, force: bool = False) -> None:
    _write_file(path, pem, mode=CERTIFICATE_FILE_MODE, force=force)


def _write_file(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    if not force:
        try:
            # O_EXCL: never overwrite, never follow a planted symlink; the mode applies at creation.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise FileExistsError(_exists_message(path)) from None
        try:
            _fill(descriptor, data, mode)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return
    # Replace atomically: readers see the old file or the new one, never half of one.
    # mkstemp creates the file with mode 0600.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        _fill(descriptor, data, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fill(descriptor: int, data: bytes, mode: int) -> None:
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), mode)  # A strict umask must not make certificates unreadable.
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _exists_message(path: Path) -> str:
    return f"{path} already exists; not overwriting it (--force replaces it)"


def _validity(not_before: datetime | None, valid_days: int) -> tuple[datetime, datetime]:
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, not {valid_days}")
    start = not_before if not_before is not None else datetime.now(UTC) - CLOCK_SKEW
    return start, start + timedelta(days=valid_days)


def _end_entity(
    authority: Authority, common_name: str, key: PrivateKey, not_before: datetime | None, valid_days: int
) -> x509.CertificateBuilder:
    start, end = _validity(not_before, valid_days)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # RSA key exchange encrypts with the certificate's key; ECDSA keys only sign.
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(authority), critical=False)
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_identifier(authority: Authority) -> x509.AuthorityKeyIdentifier:
    try:
        identifier = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:  # A CA from elsewhere may lack it.
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.private_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier.value)


def _server_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if len(name) > 253 or not DNS_NAME.fullmatch(name.lower()):
        raise ValueError(f"not a DNS name or IP address: {name!r}")
    return x509.DNSName(name.lower())


def _alternative_names(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return x509.SubjectAlternativeName([])


def _public_bytes(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
