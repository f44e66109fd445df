"""One worker's count of who called which version, since it last handed the count on.

The edge records every versioned request here: a dictionary lookup and a few additions,
no lock, no I/O. Once a second (and on shutdown, and before a report) the worker takes
what accumulated and adds it to the group's store (``store.UsageStore``), which sums the
workers and keeps the counts across reloads. Memory is bounded: at most
``callers_per_version`` named callers per version between two hand-overs, the rest
counted as ``other``; routes are templates, a bounded set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ANONYMOUS_CALLER = "anonymous"
OTHER_CALLER = "other"
UNMATCHED_ROUTE = "unmatched"


@dataclass
class CallerCounts:
    """What one caller did with one version, between two hand-overs."""

    requests: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    refused: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    status_classes: Counter[str] = field(default_factory=Counter)


UsageBatch = dict[tuple[str, str], CallerCounts]


class UsageLedger:
    def __init__(self, callers_per_version: int) -> None:
        self.callers_per_version = callers_per_version
        self._counts: UsageBatch = {}
        self._callers: Counter[str] = Counter()

    def record(
        self, version: str, caller: str, route: str | None, status: int, now: float, *, refused: bool = False
    ) -> None:
        """Count one request (``refused``: answered 410 by a brownout or the sunset)."""
        counts = self._counts.get((version, caller))
        if counts is None:
            counts = self._start(version, caller, now)
        counts.requests += 1
        counts.last_seen = now
        counts.routes[route or UNMATCHED_ROUTE] += 1
        counts.status_classes[f"{status // 100}xx"] += 1
        if refused:
            counts.refused += 1

    def _start(self, version: str, caller: str, now: float) -> CallerCounts:
        if caller != OTHER_CALLER and self._callers[version] >= self.callers_per_version:
            caller = OTHER_CALLER
            counts = self._counts.get((version, caller))
            if counts is not None:
                return counts
        elif caller != OTHER_CALLER:
            self._callers[version] += 1
        counts = self._counts[(version, caller)] = CallerCounts(first_seen=now)
        return counts

    def take(self) -> UsageBatch:
        """Everything counted since the last call; the ledger starts empty again."""
        counts, self._counts = self._counts, {}
        self._callers.clear()
        return counts
