"""A worker's usage accounting: the ledger the edge writes, handed to the group's store once
a second, at shutdown, and before every report or scrape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily

from gateway.background import running_alongside
from gateway.usage.ledger import UsageLedger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from prometheus_client.core import Metric

    from gateway.usage.ledger import UsageBatch
    from gateway.usage.store import CallerUsage, UsageStore

HAND_OVER_SECONDS = 1.0
logger = logging.getLogger("gateway.usage")


class UsageRecorder:
    def __init__(self, store: UsageStore) -> None:
        self.store = store
        self._new_caller = asyncio.Event()
        self.ledger = UsageLedger(store.callers_per_version, on_new_caller=self._new_caller.set)
        # The edge calls this for every versioned request.
        self.record = self.ledger.record

    def hand_over(self) -> None:
        """Add what this worker counted to the group's store, from the event loop's thread."""
        self._store(self.ledger.take())

    async def hand_over_aside(self) -> None:
        """The same, with the SQLite transaction in a thread; the ledger is only ever
        touched from the event loop's thread, where the edge writes it."""
        await asyncio.to_thread(self._store, self.ledger.take())

    def _store(self, batch: UsageBatch) -> None:
        try:
            self.store.add(batch)
        except Exception:
            # The counts are an aid to deciding a sunset; a locked or full disk must not
            # fail requests. What this batch held is lost, and said so.
            logger.exception("usage counts of %d requests could not be stored", sum(batch.counts.values()))

    async def callers(self) -> list[CallerUsage]:
        """The group's counts, this worker's latest included."""
        await self.hand_over_aside()
        return await asyncio.to_thread(self.store.callers)

    @contextlib.asynccontextmanager
    async def handing_over(self, interval: float = HAND_OVER_SECONDS) -> AsyncIterator[None]:
        """Hand the counts over every ``interval`` seconds while in the block (at once when a
        caller appears that this worker had not seen), and once at its end."""

        async def hand_over_every() -> None:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # cancellation that ends this task when the event fires at the same moment.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._new_caller.wait()
                self._new_caller.clear()
                await self.hand_over_aside()

        try:
            async with running_alongside(hand_over_every):
                yield
        finally:
            self.hand_over()
            self.store.close()


class UsageCollector:
    """``gateway_version_requests_total{version, caller}`` for Prometheus, from the group's store."""

    def __init__(self, recorder: UsageRecorder | None, store: UsageStore) -> None:
        self.recorder = recorder
        self.store = store

    def collect(self) -> Iterator[Metric]:
        if self.recorder is not None:
            self.recorder.hand_over()
        family = CounterMetricFamily(
            "gateway_version_requests",
            "Requests per API version and caller (callers past the cap counted as 'other').",
            labels=["version", "caller"],
        )
        for usage in self.store.callers():
            family.add_metric([usage.version, usage.caller], usage.requests)
        yield family
