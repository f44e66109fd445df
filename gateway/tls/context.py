"""The server's TLS context, built once from settings, refusing to start on any doubt.

Built by the gateway itself rather than by Uvicorn's ``ssl_*`` options: those cannot set
a minimum TLS version, a CRL, or optional client certificates with verification, and
the stock Gunicorn worker ignores Gunicorn's ``ssl_context`` hook altogether. A set-up
failure (a missing file, a key that does not match its certificate, a wrong password)
stops the start with a message naming the setting, instead of serving plain HTTP.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.settings import Settings

# TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate" profile);
# TLS 1.3 suites are OpenSSL's defaults, all of them modern.
MODERN_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"
TLS_VERSION_CODES = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class TLSConfigurationError(Exception):
    """A TLS setting the server cannot start with; the message names the variable."""


def _require_file(path: Path, variable: str) -> None:
    if not path.is_file():
        hint = " (run `gateway certs init`)" if path.parts[:1] == ("certs",) else ""
        raise TLSConfigurationError(f"{variable}: {path} does not exist{hint}")


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for ``settings.tls_mode``, or None when TLS is off."""
    if settings.tls_mode == "off":
        return None
    _require_file(settings.tls_certfile, "GATEWAY_TLS_CERTFILE")
    _require_file(settings.tls_keyfile, "GATEWAY_TLS_KEYFILE")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Set explicitly: the floor must not depend on the system's OpenSSL policy.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(MODERN_TLS12_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["http/1.1"])
    password = settings.tls_key_password.get_secret_value() if settings.tls_key_password else None
    try:
        context.load_cert_chain(settings.tls_certfile, settings.tls_keyfile, password)
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error) or "key values mismatch" in str(error):
            raise TLSConfigurationError(
                f"GATEWAY_TLS_KEYFILE: {settings.tls_keyfile} is not the key of {settings.tls_certfile}"
            ) from None
        raise TLSConfigurationError(
            f"GATEWAY_TLS_CERTFILE/GATEWAY_TLS_KEYFILE: cannot load {settings.tls_certfile} with "
            f"{settings.tls_keyfile} (a wrong GATEWAY_TLS_KEY_PASSWORD, or not PEM): {error.reason or error}"
        ) from None
    if settings.tls_mode in ("mtls", "mtls-optional"):
        _require_client_verification(context, settings)
    return context


def _require_client_verification(context: ssl.SSLContext, settings: Settings) -> None:
    _require_file(settings.tls_ca_file, "GATEWAY_TLS_CA_FILE")
    try:
        context.load_verify_locations(cafile=settings.tls_ca_file)
    except ssl.SSLError as error:
        raise TLSConfigurationError(
            f"GATEWAY_TLS_CA_FILE: {settings.tls_ca_file} holds no usable CA certificate: {error}"
        ) from None
    # mtls refuses the handshake without a valid client certificate; mtls-optional
    # verifies one when presented and lets the app decide per route when there is none.
    context.verify_mode = ssl.CERT_REQUIRED if settings.tls_mode == "mtls" else ssl.CERT_OPTIONAL
    # OpenSSL checks the certificate's purpose for the client side: a certificate with
    # only the serverAuth extended key usage is refused at the handshake.
    if settings.tls_crl_file is not None:
        _require_file(settings.tls_crl_file, "GATEWAY_TLS_CRL_FILE")
        try:
            context.load_verify_locations(cafile=settings.tls_crl_file)
        except ssl.SSLError as error:
            raise TLSConfigurationError(
                f"GATEWAY_TLS_CRL_FILE: {settings.tls_crl_file} is not a PEM CRL: {error}"
            ) from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def cipher_suite_codes(context: ssl.SSLContext) -> dict[str, int]:
    """OpenSSL cipher names to their IANA codes, as the ASGI TLS extension reports them."""
    # OpenSSL's id is 0x0300XXXX; the low 16 bits are the IANA code point.
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
