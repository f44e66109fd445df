"""Who made a request, for usage accounting and version pins.

In order: the verified mTLS identity, or the one a trusted proxy forwarded in
``X-Forwarded-Client-Cert`` (``identity_of``); else the value of the configured caller
header (``GATEWAY_CALLER_HEADER``: an authenticating proxy in front names its user),
believed only on a connection from a trusted proxy; else ``anonymous``. A caller header
from anyone else is removed before the app sees it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from gateway.tls.identity import CALLER_SCOPE_KEY, certificate_identity, identity_of
from gateway.usage.ledger import ANONYMOUS_CALLER

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.types import Scope

# A name fit for a metric label and a log field: printable, no spaces or quotes.
_WELL_FORMED_CALLER = re.compile(rb"^[A-Za-z0-9._:@/+=~-]{1,128}$")
logger = logging.getLogger("gateway.usage")


class CallerAttribution:
    def __init__(self, caller_header: str | None, trusted_proxies: Iterable[str]) -> None:
        self.header = caller_header.lower().encode("latin-1") if caller_header else None
        self.trusted_proxies = frozenset(trusted_proxies)

    def caller_of(self, scope: Scope, header_value: bytes | None) -> str:
        """The request's caller; ``header_value`` is the caller header's, if any."""
        if header_value is None and CALLER_SCOPE_KEY not in scope and "extensions" not in scope:
            return ANONYMOUS_CALLER  # Plain HTTP with nothing forwarded: the common case, decided fast.
        identity = identity_of(scope)
        if identity is not None:
            return identity.spiffe_id
        if header_value is None or self.header is None:
            return ANONYMOUS_CALLER
        peer = certificate_identity(scope)
        if peer is not None and peer.spiffe_id in self.trusted_proxies:
            if _WELL_FORMED_CALLER.match(header_value):
                return header_value.decode("ascii")
            return ANONYMOUS_CALLER
        # Anyone could have written it: the app must not read it as the proxy's word.
        scope["headers"] = [(name, value) for name, value in scope["headers"] if name != self.header]
        logger.debug("ignored %s from a connection that is not a trusted proxy", self.header.decode())
        return ANONYMOUS_CALLER
