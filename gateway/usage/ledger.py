"""One worker's count of who called which version, since it last handed the count on.

The edge records every versioned request here: one tuple and one dictionary update, no
lock, no clock, no I/O. Once a second (and on shutdown, and before a report) the worker
takes what accumulated and adds it to the group's store (``store.UsageStore``), which
sums the workers and keeps the counts across reloads; first and last seen are the bounds
of the window a request was counted in, so they are exact to the hand-over interval.
Memory is bounded: at most ``callers_per_version`` named callers per version between two
hand-overs, the rest counted as ``other``; routes are templates, a bounded set.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

ANONYMOUS_CALLER = "anonymous"
OTHER_CALLER = "other"
UNMATCHED_ROUTE = "unmatched"
# The edge's own refusal of a retired or browned-out version: a 410 that reached no route.
REFUSED_STATUS = 410

# (version, caller, route template or None, status)
UsageKey = tuple[str, str, str | None, int]


@dataclass
class CallerCounts:
    """What one caller did with one version within one window."""

    requests: int = 0
    refused: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    status_classes: Counter[str] = field(default_factory=Counter)


@dataclass
class UsageBatch:
    """The counts of one window, ``started`` to ``ended`` (Unix time)."""

    counts: dict[UsageKey, int]
    started: float
    ended: float

    def __bool__(self) -> bool:
        return bool(self.counts)

    def by_caller(self) -> dict[tuple[str, str], CallerCounts]:
        callers: dict[tuple[str, str], CallerCounts] = {}
        for (version, caller, route, status), requests in self.counts.items():
            counts = callers.get((version, caller))
            if counts is None:
                counts = callers[(version, caller)] = CallerCounts()
            counts.requests += requests
            counts.routes[route or UNMATCHED_ROUTE] += requests
            counts.status_classes[f"{status // 100}xx"] += requests
            if route is None and status == REFUSED_STATUS:
                counts.refused += requests
        return callers


class UsageLedger:
    def __init__(self, callers_per_version: int, on_new_caller: Callable[[], None] | None = None) -> None:
        self.callers_per_version = callers_per_version
        self._counts: dict[UsageKey, int] = {}
        self._callers: dict[str, set[str]] = {}
        self._started = time.time()
        # Callers this worker has counted before, per version (bounded by the cap): the first
        # request of a new one is handed over at once, so a report names it within moments.
        self._known: set[tuple[str, str]] = set()
        self._on_new_caller = on_new_caller

    def record(self, version: str, caller: str, route: str | None, status: int) -> None:
        """Count one request."""
        key = (version, caller, route, status)
        counts = self._counts
        requests = counts.get(key)
        if requests is None:
            key = self._admit(key)
            requests = counts.get(key, 0)
        counts[key] = requests + 1

    def _admit(self, key: UsageKey) -> UsageKey:
        """The key itself while the version has room for its caller, else the caller as ``other``."""
        version, caller, route, status = key
        callers = self._callers.setdefault(version, set())
        if caller not in callers and caller != OTHER_CALLER:
            if len(callers) >= self.callers_per_version:
                key = (version, OTHER_CALLER, route, status)
            else:
                callers.add(caller)
        if (key[0], key[1]) not in self._known:
            self._known.add((key[0], key[1]))
            if self._on_new_caller is not None:
                self._on_new_caller()
        return key

    def take(self) -> UsageBatch:
        """Everything counted since the last call; the ledger starts a new window."""
        now = time.time()
        batch = UsageBatch(self._counts, self._started, now)
        self._counts, self._callers, self._started = {}, {}, now
        return batch
