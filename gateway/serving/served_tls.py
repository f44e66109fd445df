"""The TLS a worker serves with, loaded in the arbiter, and kept when new files are broken.

Gunicorn builds each worker object in the arbiter, before forking it, and the gateway's
worker loads the TLS files there. An exception at that point is not a worker failing to
boot: it escapes Gunicorn 27's main loop, which then stops every worker at once and exits
(measured: a SIGHUP after replacing the key with one that does not match the certificate
took the whole group down). So a worker built while the files do not load (an operator
half-way through a rotation, a worker replaced after a crash or ``max_requests``) serves
what the arbiter loaded last, and the arbiter logs why. SIGHUP itself checks the files
first (``reload_guard``) and leaves the running workers alone when they do not load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from gateway.tls.context import TLSConfigurationError, cipher_suite_codes, server_context
from gateway.tls.scope import ServerTLS

if TYPE_CHECKING:
    import ssl
    from datetime import datetime

    from gateway.settings import Settings

logger = logging.getLogger("gateway.tls")


@dataclass(frozen=True)
class ServedTLS:
    context: ssl.SSLContext
    # What the ASGI TLS extension reports: the certificate and the cipher codes.
    facts: ServerTLS
    serial: int
    not_after: datetime


def load_served_tls(settings: Settings) -> ServedTLS | None:
    """The TLS of ``settings`` (None when it is off); TLSConfigurationError names the setting."""
    context = server_context(settings)
    if context is None:
        return None
    try:
        # Read again after the context loaded it: the facts describe the same file.
        certificate_pem = settings.tls_certfile.read_text()
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    except (OSError, ValueError) as error:
        raise TLSConfigurationError(
            f"GATEWAY_TLS_CERTFILE: cannot read {settings.tls_certfile}: {error}"
        ) from None
    return ServedTLS(
        context=context,
        facts=ServerTLS(server_cert_pem=certificate_pem, cipher_codes=cipher_suite_codes(context)),
        serial=certificate.serial_number,
        not_after=certificate.not_valid_after_utc,
    )


def load_or_keep(settings: Settings, loaded_before: ServedTLS | None) -> ServedTLS | None:
    """The TLS the files give now or, when they do not load, what was loaded before.

    Only the first load (before any worker exists) is allowed to fail, so that a broken
    start stops with the setting's name instead of serving something stale.
    """
    try:
        return load_served_tls(settings)
    except TLSConfigurationError as error:
        if loaded_before is None:
            raise
        logger.error(
            "%s; the new worker serves the certificate loaded before (serial %x, expires %s) "
            "until the files load again",
            error,
            loaded_before.serial,
            loaded_before.not_after.isoformat(),
        )
        return loaded_before
