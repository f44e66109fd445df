"""The id of the request being served, visible to every log line written while serving it."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = b"x-request-id"

# A well-formed incoming id is kept: printable, no spaces or separators that could
# forge log fields or headers, and short enough to index.
_WELL_FORMED_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)
# Random bytes drawn from the OS this many ids at a time: one system call per id cost the
# edge more than the rest of its request id work.
_IDS_PER_DRAW = 256
_ID_BYTES = 16


class _RandomIds:
    """128-bit ids from os.urandom, drawn in batches; a forked process draws its own."""

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0
        # A worker forked from a process that drew ids must never hand out the same ones.
        os.register_at_fork(after_in_child=self._discard)

    def _discard(self) -> None:
        self._pool, self._next = b"", 0

    def next_id(self) -> str:
        start = self._next
        if start >= len(self._pool):
            self._pool, start = os.urandom(_ID_BYTES * _IDS_PER_DRAW), 0
        self._next = start + _ID_BYTES
        return self._pool[start : start + _ID_BYTES].hex()


_random_ids = _RandomIds()


def current_request_id() -> str | None:
    return _request_id.get()


def accept_or_generate_request_id(incoming: bytes | None) -> str:
    if incoming is not None and _WELL_FORMED_REQUEST_ID.match(incoming):
        return incoming.decode("ascii")
    # 128 random bits as 32 hex digits, as uuid4().hex and secrets.token_hex(16) give them.
    return _random_ids.next_id()


def bind_request_id(request_id: str) -> None:
    # The edge calls this in the request's own task, so the value never leaks into
    # another request: each ASGI request runs in a fresh context copy.
    _request_id.set(request_id)
