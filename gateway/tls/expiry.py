"""What expires in the TLS set-up: the server certificate, and the CRL's nextUpdate.

Both are read once, when the app is built, as the workers' TLS contexts read them:
replacing the files and sending SIGHUP builds new workers, which read the new ones.
A CRL past its nextUpdate is worse than a missing one: OpenSSL checks it strictly and
refuses every client certificate ("CRL has expired") until a fresh one is loaded, so
readiness fails then, and warns while less than a quarter of its validity is left.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from cryptography import x509

from gateway.health import ProbeReport, ReadinessCheck
from gateway.tls.certificates import load_certificate

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.settings import Settings

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600
# Warn while less than this share of a CRL's validity (lastUpdate to nextUpdate) is left:
# scale-free, for CRLs published daily for a week as for monthly ones.
CRL_WARNING_SHARE = 0.25
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def certificate_expiry(path: Path) -> datetime:
    return load_certificate(path).not_valid_after_utc


def expiry_check(path: Path, *, warning_days: int) -> ReadinessCheck:
    """Fails once the certificate has expired; warns ``warning_days`` before."""
    try:
        expires = certificate_expiry(path)
    except (OSError, ValueError) as error:
        # A start with an unreadable certificate stops before this (the TLS context); a
        # worker respawned after the file broke serves the set-up the arbiter last loaded
        # (served_tls.py), so this is a warning to fix the file, not a reason to stop serving.
        return _unreadable_file_check(
            "tls:server-certificate", f"cannot read {path} ({error}); serving the certificate loaded before"
        )

    async def probe() -> ProbeReport:
        seconds_left = (expires - datetime.now(UTC)).total_seconds()
        days_left = int(seconds_left // SECONDS_PER_DAY)
        if seconds_left <= 0:
            raise RuntimeError(f"the server certificate {path} expired on {expires.isoformat()}")
        status: Literal["pass", "warn"] = "warn" if days_left < warning_days else "pass"
        return ProbeReport(status, f"{days_left} days left; expires {expires.isoformat()}")

    return ReadinessCheck("tls:server-certificate", probe, component_type="certificate")


def _unreadable_file_check(name: str, output: str) -> ReadinessCheck:
    async def probe() -> ProbeReport:
        return ProbeReport("warn", output)

    return ReadinessCheck(name, probe, component_type="certificate")


def revocation_list_validity(path: Path) -> tuple[datetime, datetime | None]:
    """lastUpdate and nextUpdate of the PEM CRL file; of the CRL due first when the file
    holds several (OpenSSL loads them all). nextUpdate is None when no CRL sets one."""
    crls = [x509.load_pem_x509_crl(block) for block in _PEM_CRL.findall(path.read_bytes())]
    if not crls:
        raise ValueError(f"{path}: no PEM CRL")
    dated = [crl for crl in crls if crl.next_update_utc is not None]
    if not dated:
        return max(crl.last_update_utc for crl in crls), None
    due_first = min(dated, key=lambda crl: crl.next_update_utc or datetime.max.replace(tzinfo=UTC))
    return due_first.last_update_utc, due_first.next_update_utc


def crl_expiry_check(path: Path) -> ReadinessCheck:
    """Fails once the CRL is past its nextUpdate; warns in the last quarter of its validity."""
    try:
        last_update, next_update = revocation_list_validity(path)
    except (OSError, ValueError) as error:
        # As for the certificate: a worker respawned while the file is broken serves the CRL
        # loaded before, and must not fail to boot (Gunicorn would stop the whole group).
        return _unreadable_file_check(
            "tls:revocation-list", f"cannot read {path} ({error}); serving the revocation list loaded before"
        )

    async def probe() -> ProbeReport:
        if next_update is None:
            return ProbeReport("pass", f"no nextUpdate; issued {last_update.isoformat()}")
        seconds_left = (next_update - datetime.now(UTC)).total_seconds()
        if seconds_left <= 0:
            raise RuntimeError(
                f"the revocation list {path} expired at {next_update.isoformat()}: every client "
                "certificate is refused until a new one is in place and the server gets SIGHUP"
            )
        lifetime = (next_update - last_update).total_seconds()
        status: Literal["pass", "warn"] = "warn" if seconds_left < lifetime * CRL_WARNING_SHARE else "pass"
        hours_left = int(seconds_left // SECONDS_PER_HOUR)
        return ProbeReport(status, f"{hours_left} hours left; next update due {next_update.isoformat()}")

    return ReadinessCheck("tls:revocation-list", probe, component_type="certificate")


def tls_readiness_checks(settings: Settings) -> list[ReadinessCheck]:
    """What readiness checks of the TLS set-up: the server certificate, and the CRL where
    one is configured (only the mutual-TLS modes load it)."""
    if settings.tls_mode == "off":
        return []
    checks = [expiry_check(settings.tls_certfile, warning_days=settings.tls_expiry_warning_days)]
    if settings.tls_crl_file is not None and settings.tls_mode != "tls":
        checks.append(crl_expiry_check(settings.tls_crl_file))
    return checks
