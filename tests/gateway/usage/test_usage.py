"""Usage by caller: each worker's ledger, and the group's store that sums them under a cap."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from gateway.usage.ledger import OTHER_CALLER, UNMATCHED_ROUTE, UsageLedger
from gateway.usage.recorder import UsageRecorder
from gateway.usage.store import UsageStore, usage_location

if TYPE_CHECKING:
    from pathlib import Path

BILLING = "spiffe://gateway.local/service/billing"
REPORTING = "spiffe://gateway.local/service/reporting"


def test_a_ledger_counts_requests_routes_and_status_classes_per_caller() -> None:
    ledger = UsageLedger(callers_per_version=10)
    before = time.time()
    ledger.record("v1", BILLING, "/v1/items/{item_id}", 200)
    ledger.record("v1", BILLING, "/v1/items/{item_id}", 404)
    ledger.record("v1", BILLING, None, 410)  # The edge's refusal: no route reached.
    ledger.record("v1", BILLING, "/v1/items/{item_id}", 410)  # The app's own 410 is no refusal.
    ledger.record("v2", BILLING, "/v2/items", 201)

    batch = ledger.take()
    assert before - 1 <= batch.started <= batch.ended <= time.time()
    callers = batch.by_caller()
    billing_v1 = callers[("v1", BILLING)]
    assert (billing_v1.requests, billing_v1.refused) == (4, 1)
    assert billing_v1.routes == {"/v1/items/{item_id}": 3, UNMATCHED_ROUTE: 1}
    assert billing_v1.status_classes == {"2xx": 1, "4xx": 3}
    assert callers[("v2", BILLING)].requests == 1
    assert not ledger.take()


def test_a_ledger_counts_callers_past_its_cap_as_other() -> None:
    ledger = UsageLedger(callers_per_version=2)
    for number in range(5):
        ledger.record("v1", f"caller-{number}", "/v1/items", 200)
    ledger.record("v1", "caller-0", "/v1/items", 200)
    ledger.record("v2", "caller-4", "/v2/items", 200)

    batch = ledger.take().by_caller()
    assert sorted(caller for version, caller in batch if version == "v1") == [
        "caller-0",
        "caller-1",
        OTHER_CALLER,
    ]
    assert batch[("v1", OTHER_CALLER)].requests == 3
    assert batch[("v1", "caller-0")].requests == 2
    # The cap is per version.
    assert ("v2", "caller-4") in batch


def _store(location: str, cap: int = 10) -> UsageStore:
    return UsageStore(location, callers_per_version=cap, top_routes=2)


def test_the_store_sums_workers_and_keeps_first_and_last_seen(tmp_path: Path) -> None:
    location = usage_location(str(tmp_path))
    first_worker, second_worker = _store(location), _store(location)
    windows = {first_worker: ((100.0, 101.0), ["/a", "/a", "/b"]), second_worker: ((50.0, 51.0), ["/c"])}
    for worker, (window, routes) in windows.items():
        ledger = UsageLedger(callers_per_version=10)
        for route in routes:
            ledger.record("v1", BILLING, route, 200)
        batch = ledger.take()
        batch.started, batch.ended = window
        worker.add(batch)

    (billing,) = first_worker.callers()
    assert billing.requests == 4
    assert (billing.first_seen, billing.last_seen) == (50.0, 101.0)
    # The two most used routes, most used first.
    assert billing.top_routes == [("/a", 2), ("/b", 1)]
    assert billing.status_classes == {"2xx": 4}
    first_worker.close()
    second_worker.close()


def test_the_cap_holds_across_workers(tmp_path: Path) -> None:
    location = usage_location(str(tmp_path))
    workers = [_store(location, cap=2) for _ in range(3)]
    for number, worker in enumerate(workers):
        ledger = UsageLedger(callers_per_version=2)
        ledger.record("v1", f"caller-{number}", "/v1/items", 200)
        ledger.record("v1", BILLING if number == 0 else REPORTING, "/v1/items", 200)
        worker.add(ledger.take())

    callers = {usage.caller: usage.requests for usage in workers[0].callers()}
    assert len(callers.keys() - {OTHER_CALLER}) == 2
    assert sum(callers.values()) == 6
    assert callers[OTHER_CALLER] == 4


def test_counts_outlive_the_workers_that_wrote_them(tmp_path: Path) -> None:
    location = usage_location(str(tmp_path))
    old_worker = _store(location)
    ledger = UsageLedger(callers_per_version=10)
    ledger.record("v1", BILLING, "/v1/items", 200)
    old_worker.add(ledger.take())
    old_worker.close()

    # A reload's new worker opens the same file and sees what the old one counted.
    assert [usage.caller for usage in _store(location).callers()] == [BILLING]


def test_callers_are_listed_by_last_seen() -> None:
    store = _store(":memory:")
    for caller, window in ((BILLING, (1.0, 2.0)), (REPORTING, (2.0, 3.0))):
        ledger = UsageLedger(callers_per_version=10)
        ledger.record("v1", caller, "/v1/items", 200)
        batch = ledger.take()
        batch.started, batch.ended = window
        store.add(batch)
    assert [usage.caller for usage in store.callers()] == [REPORTING, BILLING]


@pytest.mark.anyio
async def test_handing_over_stops_even_when_a_new_caller_arrives_as_it_stops() -> None:
    recorder = UsageRecorder(_store(":memory:"))
    started = time.monotonic()
    with anyio.move_on_after(5):
        async with recorder.handing_over(interval=60):
            await anyio.lowlevel.checkpoint()  # The hand-over task now waits for a new caller.
            # A new caller wakes it in the same loop pass as the cancellation that ends it
            # (Python 3.11's wait_for swallowed that cancellation: the shutdown hung).
            recorder.record("v1", BILLING, "/v1/items", 200)
    assert time.monotonic() - started < 2


def test_a_worker_opening_the_store_while_another_writes_waits_for_it(tmp_path: Path) -> None:
    # A new file, not yet in WAL mode, in which another worker holds the write lock: SQLite
    # refuses the switch to WAL at once ("database is locked") rather than wait; found when
    # two workers of a group counted their first requests at the same moment.
    location = usage_location(str(tmp_path))
    other_worker = sqlite3.connect(location, isolation_level=None, check_same_thread=False)
    other_worker.execute("CREATE TABLE warming_up (x)")
    other_worker.execute("BEGIN IMMEDIATE")
    releases = threading.Timer(0.3, lambda: other_worker.execute("COMMIT"))
    releases.start()
    try:
        ledger = UsageLedger(callers_per_version=10)
        ledger.record("v1", BILLING, "/v1/items", 200)
        store = _store(location)
        store.add(ledger.take())
    finally:
        releases.join()
        other_worker.close()
    assert [usage.caller for usage in store.callers()] == [BILLING]
