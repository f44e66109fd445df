"""Which version serves a request: its path's prefix, else its ``API-Version`` header, else
the version its caller is pinned to, else the current version.

A path such as ``/v2/items/1`` names its version; one without a version prefix
(``/items/1``) may name it in ``API-Version: v2`` (or ``2``). Callers that cannot send the
header (a partner's unchanged client, say) are pinned to a version in settings. Whatever
chose it, the response says which version served it (``API-Version``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.versions import Lifecycle

if TYPE_CHECKING:
    from gateway.lifecycle import VersionPolicy

API_VERSION_HEADER = b"api-version"


@dataclass(frozen=True)
class UnknownVersion:
    """A requested version the registry does not have: answered 400, listing those it has."""

    requested: str
    known: list[str]

    @property
    def detail(self) -> str:
        return f"API-Version {self.requested!r} is not a version of this API; use one of {', '.join(self.known)}."


class VersionChoice:
    def __init__(self, policies: dict[str, VersionPolicy], pins: dict[str, str]) -> None:
        self.by_prefix = policies
        self._by_name = {policy.entry.name.lower(): policy for policy in policies.values()}
        self._pins = {caller: self._by_name[name.lower()] for caller, name in pins.items()}
        current = [policy for policy in policies.values() if policy.entry.status is Lifecycle.CURRENT]
        # The newest current version: registries list versions oldest first.
        self.default = current[-1] if current else None
        self.pinned_callers = bool(self._pins)

    def for_header(self, requested: bytes) -> VersionPolicy | UnknownVersion:
        """The version an ``API-Version`` header names: ``v2``, ``V2`` or ``2``."""
        name = requested.decode("latin-1").strip().lstrip("/").lower()
        if name.isdigit():
            name = f"v{name}"
        policy = self._by_name.get(name)
        if policy is None:
            known = [policy.entry.name for policy in self.by_prefix.values()]
            return UnknownVersion(requested.decode("latin-1")[:64], known)
        return policy

    def for_caller(self, caller: str) -> VersionPolicy | None:
        """The caller's pinned version, else the current one (None: no version is current)."""
        return self._pins.get(caller, self.default)
