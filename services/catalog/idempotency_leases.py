"""How long an Idempotency-Key is remembered, how long a request holds it, when expired ones go."""

from __future__ import annotations

import time
from datetime import timedelta

DEFAULT_IDEMPOTENCY_KEY_TTL = 24 * 60 * 60.0
# How often one store deletes expired idempotency keys, in seconds.
_PURGE_INTERVAL = 300.0


class KeyLeases:
    def __init__(self, *, ttl: float, call_timeout: float) -> None:
        self.ttl = timedelta(seconds=ttl)
        # A request holds a key through two transactions, each bounded by ``call_timeout``; an
        # unfinished claim older than this was abandoned (its process died) and may be retaken.
        self.lease = timedelta(seconds=3 * call_timeout)
        self._next_purge = 0.0

    def purge_due(self) -> bool:
        """Whether this store should purge expired keys now (at most every few minutes)."""
        if time.monotonic() < self._next_purge:
            return False
        self._next_purge = time.monotonic() + _PURGE_INTERVAL
        return True
