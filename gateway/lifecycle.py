"""What a version's lifecycle means on the wire, computed once per version.

- Deprecation (RFC 9745): ``@<unix seconds>`` of the deprecation date.
- Sunset (RFC 8594): an HTTP date, never earlier than the deprecation.
- Link: ``rel="deprecation"`` (the migration notes) and ``rel="successor-version"``.
- After the sunset date, 410 Gone with a problem body naming the successor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TYPE_CHECKING

from gateway.errors import problem_body

if TYPE_CHECKING:
    from gateway.versions import VersionEntry

Headers = list[tuple[bytes, bytes]]


@dataclass
class VersionPolicy:
    entry: VersionEntry
    enforce_sunset: bool
    sunset_timestamp: float | None = field(init=False)
    # The Link targets include the server's root path, known only from a request's
    # scope; it is the same for every request of a process, so one entry is the norm.
    _headers_by_root_path: dict[str, Headers] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        sunset = self.entry.sunset_at
        self.sunset_timestamp = sunset.timestamp() if sunset is not None else None
        if self.entry.status == "sunset":
            self.sunset_timestamp = float("-inf")

    def is_gone(self, now_timestamp: float) -> bool:
        return (
            self.enforce_sunset
            and self.sunset_timestamp is not None
            and now_timestamp >= self.sunset_timestamp
        )

    def response_headers(self, root_path: str) -> Headers:
        headers = self._headers_by_root_path.get(root_path)
        if headers is None:
            headers = self._headers_by_root_path[root_path] = self._build_headers(root_path)
        return headers

    def _build_headers(self, root_path: str) -> Headers:
        entry = self.entry
        headers: Headers = []
        if entry.deprecated_at is not None:
            headers.append((b"deprecation", f"@{int(entry.deprecated_at.timestamp())}".encode()))
            guide = entry.migration_guide or f"{root_path}/docs#{entry.name}"
            headers.append((b"link", f'<{guide}>; rel="deprecation"; type="text/html"'.encode()))
        if entry.sunset_at is not None:
            headers.append((b"sunset", format_datetime(entry.sunset_at, usegmt=True).encode()))
        if entry.successor is not None and entry.deprecated_at is not None:
            headers.append((b"link", f'<{root_path}{entry.successor}/>; rel="successor-version"'.encode()))
        return headers

    def gone_body(self, path: str) -> bytes:
        successor = self.entry.successor
        detail = f"API version {self.entry.name} has reached its sunset"
        detail += f"; use {successor} instead." if successor else "."
        body = problem_body(410, detail, instance=path, successor=successor)
        return json.dumps(body, separators=(",", ":")).encode()


def version_policies(entries: list[VersionEntry], enforce_sunset: bool) -> dict[str, VersionPolicy]:
    return {entry.prefix: VersionPolicy(entry, enforce_sunset) for entry in entries}
