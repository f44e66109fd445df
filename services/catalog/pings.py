"""Ping coalescing: pings made while one is running share its query.

Under the gateway, v1, v2 and /internal each have a readiness check on one shared store,
and a probe runs them at once: one ``SELECT 1`` answers them all.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class SharedPing:
    def __init__(self, ping_once: Callable[[], Awaitable[None]]) -> None:
        self._ping_once = ping_once
        self._in_flight: asyncio.Future[None] | None = None

    async def __call__(self) -> None:
        ping = self._in_flight
        if ping is None:
            ping = self._in_flight = asyncio.ensure_future(self._ping_once())
            ping.add_done_callback(self._finished)
        # Shielded: a caller that gives up (its check's timeout) leaves the others their answer.
        await asyncio.shield(ping)

    def _finished(self, ping: asyncio.Future[None]) -> None:
        self._in_flight = None
        if not ping.cancelled():
            ping.exception()  # Retrieved here, for when every caller gave up before the end.
