"""How fast a request body arrives, judged as Kestrel's ``MinRequestBodyDataRate`` judges it.

A body must keep moving: no byte for ``body_timeout`` seconds, or fewer than
``body_min_rate`` bytes a second on average once ``body_rate_grace`` seconds have passed,
and the connection is cut (408). Time counts only while the server is reading: while
reading is paused (the app has not taken what arrived, or pipelined requests wait) the
client cannot send, so the clock stops. Pure bookkeeping over the loop's clock; the
connection (``connection_guard``) arms one timer and asks ``verdict`` when it fires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.serving.limits import HttpLimits

# How often a body in progress is judged: Kestrel's heartbeat, and the rate's resolution.
BODY_CHECK_INTERVAL_SECONDS = 1.0


class BodyPace:
    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.begin(0.0)

    def begin(self, now: float) -> None:
        """A request body starts arriving now."""
        self.started = now
        self.bytes_received = 0
        self.last_progress = now
        self.paused_seconds = 0.0
        self.paused_since: float | None = None

    def received(self, byte_count: int, now: float) -> None:
        self.bytes_received += byte_count
        self.last_progress = now

    def pause(self, now: float) -> None:
        if self.paused_since is None:
            self.paused_since = now

    def resume(self, now: float) -> None:
        if self.paused_since is not None:
            self.paused_seconds += now - self.paused_since
            self.paused_since = None
            # Idle time counts from here: the client could not send while reading was paused.
            self.last_progress = now

    def verdict(self, now: float) -> str | None:
        """Why the body is too slow, or None while it keeps pace (or reading is paused)."""
        if self.paused_since is not None:
            return None
        idle = now - self.last_progress
        if idle >= self.limits.body_timeout:
            return f"no byte of it for {self.limits.body_timeout:g}s"
        reading = now - self.started - self.paused_seconds
        rate = self.limits.body_min_rate
        if reading > self.limits.body_rate_grace and self.bytes_received < rate * reading:
            return f"it arrived at {self.bytes_received / reading:.0f} bytes/s, under the minimum of {rate:g}"
        return None

    def next_check(self, now: float) -> float:
        """Seconds until the body should be judged again."""
        until_idle = self.last_progress + self.limits.body_timeout - now
        return max(0.01, min(BODY_CHECK_INTERVAL_SECONDS, until_idle))
