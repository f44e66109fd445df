"""Caller identities forwarded by a TLS-terminating proxy in ``X-Forwarded-Client-Cert``.

Envoy's format (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert):
comma-separated elements, one per proxy hop, each ``Key=value`` pairs separated by ``;``,
values double-quoted when they hold ``,``, ``;`` or ``=``. The element the nearest proxy
appended is the last one, and it is the only one read: earlier ones came from further
away, and a client may have written them itself.

The header is believed only when the connection itself is mutual TLS from a proxy whose
verified identity is in ``GATEWAY_TRUSTED_PROXIES``: a source address proves nothing
(with Uvicorn's proxy-header handling a local client can claim any address). From anyone
else it is removed before the app sees it, and the attempt is logged. A request through
a trusted proxy speaks for the proxy's client only: without a forwarded identity it has
none, the proxy's own identity never acts as the caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.tls.certificates import SPIFFE_ID
from gateway.tls.identity import CALLER_SCOPE_KEY, ServiceIdentity, certificate_identity

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.types import Scope

FORWARDED_CLIENT_CERT_HEADER = b"x-forwarded-client-cert"
logger = logging.getLogger("gateway.tls")


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for character in text:
        if escaped:
            escaped = False
        elif character == "\\" and quoted:
            escaped = True
        elif character == '"':
            quoted = not quoted
        elif character == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(character)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
        return value.replace('\\"', '"').replace("\\\\", "\\")
    return value


def last_element(header: str) -> dict[str, list[str]]:
    """The fields of the header's last element; a key may repeat (``URI``, ``DNS``)."""
    element = _split_outside_quotes(header, ",")[-1]
    fields: dict[str, list[str]] = {}
    for pair in _split_outside_quotes(element, ";"):
        key, separator, value = pair.strip().partition("=")
        if separator:
            fields.setdefault(key.strip().lower(), []).append(_unquote(value.strip()))
    return fields


def forwarded_identity(header: str) -> ServiceIdentity | None:
    """The SPIFFE ID the last element names in its single ``URI`` field, or None."""
    uris = last_element(header).get("uri", [])
    # As for certificates (X509-SVID 2): exactly one URI, and it is a SPIFFE ID.
    if len(uris) != 1 or not SPIFFE_ID.fullmatch(uris[0]):
        return None
    return ServiceIdentity(uris[0])


class ForwardedClientCertificates:
    """Decides, per request, whether ``X-Forwarded-Client-Cert`` names the caller."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted_proxies = frozenset(trusted_proxies)

    @property
    def active(self) -> bool:
        """Whether any proxy is trusted; without one, only a header present needs handling."""
        return bool(self.trusted_proxies)

    def resolve(self, scope: Scope, header: bytes | None) -> None:
        """Record the forwarded caller in ``scope``, or strip an untrusted header from it."""
        peer = certificate_identity(scope)
        if peer is not None and peer.spiffe_id in self.trusted_proxies:
            scope[CALLER_SCOPE_KEY] = (
                forwarded_identity(header.decode("latin-1")) if header is not None else None
            )
            return
        if header is None:
            return
        scope["headers"] = [
            (name, value) for name, value in scope["headers"] if name != FORWARDED_CLIENT_CERT_HEADER
        ]
        client = scope.get("client")
        logger.warning(
            "ignored X-Forwarded-Client-Cert from %s (%s): only a trusted proxy may forward identities",
            f"{client[0]}:{client[1]}" if client else "unknown client",
            peer.spiffe_id if peer is not None else "no verified client certificate",
        )
