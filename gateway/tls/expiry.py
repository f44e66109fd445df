"""The server certificate's expiry, watched by readiness, /health and /metrics.

Read once when the app is built: replacing the files and sending SIGHUP builds new
workers, which read the new certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from gateway.health import ProbeReport, ReadinessCheck
from gateway.tls.certificates import load_certificate

if TYPE_CHECKING:
    from pathlib import Path

SECONDS_PER_DAY = 86_400


def certificate_expiry(path: Path) -> datetime:
    return load_certificate(path).not_valid_after_utc


def expiry_check(path: Path, *, warning_days: int) -> ReadinessCheck:
    """Fails once the certificate has expired; warns ``warning_days`` before."""
    expires = certificate_expiry(path)

    async def probe() -> ProbeReport:
        seconds_left = (expires - datetime.now(UTC)).total_seconds()
        days_left = int(seconds_left // SECONDS_PER_DAY)
        if seconds_left <= 0:
            raise RuntimeError(f"the server certificate {path} expired on {expires.isoformat()}")
        status: Literal["pass", "warn"] = "warn" if days_left < warning_days else "pass"
        return ProbeReport(status, f"{days_left} days left; expires {expires.isoformat()}")

    return ReadinessCheck("tls:server-certificate", probe, component_type="certificate")
