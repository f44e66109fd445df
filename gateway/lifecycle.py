"""What a version's lifecycle means on the wire, computed once per version.

- Deprecation (RFC 9745): ``@<unix seconds>`` of the deprecation date.
- Sunset (RFC 8594): an HTTP date, never earlier than the deprecation.
- Link: ``rel="deprecation"`` (the migration notes) and ``rel="successor-version"``.
- After the sunset date, 410 Gone with a problem body naming the successor; inside a
  brownout window before it, the same 410 with the window and the sunset date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from gateway.errors import problem_bytes
from gateway.version_choice import API_VERSION_HEADER
from gateway.versions import rfc3339

if TYPE_CHECKING:
    from gateway.versions import VersionEntry

Headers = list[tuple[bytes, bytes]]


@dataclass
class VersionPolicy:
    entry: VersionEntry
    enforce_sunset: bool
    sunset_timestamp: float | None = field(init=False)
    brownout_windows: tuple[tuple[float, float], ...] = field(init=False)
    # Whether a request can ever be refused: if not, the edge never reads the clock for it.
    may_refuse: bool = field(init=False)
    name: str = field(init=False)
    # The Link targets include the server's root path, known only from a request's
    # scope; it is the same for every request of a process, so one entry is the norm.
    _headers_by_root_path: dict[str, Headers] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        sunset = self.entry.sunset_at
        self.sunset_timestamp = sunset.timestamp() if sunset is not None else None
        if self.entry.status == "sunset":
            self.sunset_timestamp = float("-inf")
        self.brownout_windows = tuple(
            (window.start.timestamp(), window.end.timestamp()) for window in self.entry.brownouts
        )
        self.may_refuse = self.enforce_sunset and (
            self.sunset_timestamp is not None or bool(self.brownout_windows)
        )
        self.name = self.entry.name

    def is_gone(self, now_timestamp: float) -> bool:
        """Whether the version refuses requests now: past its sunset, or in a brownout."""
        if not self.enforce_sunset:
            return False
        if self.sunset_timestamp is not None and now_timestamp >= self.sunset_timestamp:
            return True
        return any(start <= now_timestamp < end for start, end in self.brownout_windows)

    def response_headers(self, root_path: str) -> Headers:
        headers = self._headers_by_root_path.get(root_path)
        if headers is None:
            headers = self._headers_by_root_path[root_path] = self._build_headers(root_path)
        return headers

    def _build_headers(self, root_path: str) -> Headers:
        entry = self.entry
        # Every response of a version says which one served it (chosen by path or header).
        headers: Headers = [(API_VERSION_HEADER, entry.name.encode())]
        if entry.deprecated_at is not None:
            headers.append((b"deprecation", f"@{int(entry.deprecated_at.timestamp())}".encode()))
            guide = entry.migration_guide or f"{root_path}/docs#{entry.name}"
            headers.append((b"link", f'<{guide}>; rel="deprecation"; type="text/html"'.encode()))
        if entry.sunset_at is not None:
            headers.append((b"sunset", format_datetime(entry.sunset_at, usegmt=True).encode()))
        if entry.successor is not None and entry.deprecated_at is not None:
            headers.append((b"link", f'<{root_path}{entry.successor}/>; rel="successor-version"'.encode()))
        return headers

    def gone_body(self, path: str, now: datetime) -> bytes:
        entry = self.entry
        successor = entry.successor
        brownout = None if entry.is_gone(now) else entry.brownout_at(now)
        if brownout is None:
            detail = f"API version {entry.name} has reached its sunset"
        else:
            detail = f"API version {entry.name} is unavailable until {rfc3339(brownout.end)}, a brownout"
            detail += f" before its sunset on {rfc3339(entry.sunset_at)}" if entry.sunset_at else ""
        detail += f"; use {successor} instead." if successor else "."
        extra: dict[str, object] = {"successor": successor}
        if entry.sunset_at is not None:
            extra["sunset"] = rfc3339(entry.sunset_at)
        if brownout is not None:
            extra["brownout"] = {"start": rfc3339(brownout.start), "end": rfc3339(brownout.end)}
        return problem_bytes(410, detail, instance=path, **extra)


def version_policies(entries: list[VersionEntry], enforce_sunset: bool) -> dict[str, VersionPolicy]:
    return {entry.prefix: VersionPolicy(entry, enforce_sunset) for entry in entries}
