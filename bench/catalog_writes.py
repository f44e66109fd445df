"""Concurrent catalog writes through a real ``gateway serve``, on SQLite and on PostgreSQL.

    python -m bench.catalog_writes                 # both stores (PostgreSQL skipped if absent)
    python -m bench.catalog_writes --store sqlite --writers 64 --workers 4

Two phases per store, each counted, not only timed:

- **conditional updates**: ``--writers`` clients each read an item, then PATCH its counter
  plus one with ``If-Match``, and on 412 read again and retry, until ``--updates``
  updates succeeded across ``--items`` items. A lost update leaves a counter below the
  number of updates that succeeded on its item (or a revision out of step with it).
- **idempotent creations**: ``--creations`` POSTs with their own Idempotency-Key, each sent
  twice at once (a client's retry). A duplicate is an item beyond one per key.

Writes/s counts successful writes per second of the phase; latencies are per request
(a PATCH that got 412 included). Client and server share the machine, so on a small one
the figures are a floor, not the server's ceiling.

``--cpu`` measures instead what one uncontended write costs the server: one client sends
each kind of write in turn to a one-worker ``gateway serve``, and the worker's CPU time
(user + system, from ``/proc``) is divided by the requests; the client's own time does
not count, so the figure holds on a busy machine too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from collections.abc import Iterator

GATEWAY = str(Path(sys.executable).parent / "gateway")
LOOPBACK = "127.0.0.1"
DEFAULT_POSTGRESQL_URL = os.environ.get(
    "CATALOG_TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0
MAX_ATTEMPTS_PER_UPDATE = 1000


@dataclass
class PhaseResult:
    writes: int
    seconds: float
    writes_per_second: float
    requests: int
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]


@dataclass
class StoreResult:
    store: str
    workers: int
    writers: int
    updates: PhaseResult
    lost_updates: int
    creations: PhaseResult
    duplicate_creations: int


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else 0.0


def _phase(writes: int, seconds: float, latencies: list[float], statuses: Counter[int]) -> PhaseResult:
    return PhaseResult(
        writes=writes,
        seconds=round(seconds, 3),
        writes_per_second=round(writes / seconds, 1),
        requests=len(latencies),
        p50_ms=round(_percentile(latencies, 0.50), 2),
        p99_ms=round(_percentile(latencies, 0.99), 2),
        statuses=dict(sorted(statuses.items())),
    )


async def _timed(
    latencies: list[float], statuses: Counter[int], request: Any, *args: Any, **kwargs: Any
) -> httpx.Response:
    started = time.perf_counter()
    response: httpx.Response = await request(*args, **kwargs)
    latencies.append(time.perf_counter() - started)
    statuses[response.status_code] += 1
    return response


async def _conditional_updates(
    client: httpx.AsyncClient, *, writers: int, items: int, updates: int
) -> tuple[PhaseResult, int]:
    item_ids = []
    for number in range(items):
        created = await client.post(
            "/v2/items", json={"name": f"counter {number}", "price": {"amount": "1.00"}, "description": "0"}
        )
        created.raise_for_status()
        item_ids.append(created.json()["id"])
    remaining = updates
    successes: Counter[int] = Counter()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def writer(number: int) -> None:
        nonlocal remaining
        item_id = item_ids[number % items]
        while remaining > 0:
            remaining -= 1  # Claimed before awaiting: exactly ``updates`` succeed in all.
            for _attempt in range(MAX_ATTEMPTS_PER_UPDATE):
                read = await client.get(f"/v2/items/{item_id}")
                read.raise_for_status()
                counter = int(read.json()["description"])
                written = await _timed(
                    latencies,
                    statuses,
                    client.patch,
                    f"/v2/items/{item_id}",
                    json={"description": str(counter + 1)},
                    headers={"If-Match": read.headers["etag"]},
                )
                if written.status_code == 200:
                    successes[item_id] += 1
                    break
                if written.status_code != 412:
                    raise RuntimeError(f"PATCH answered {written.status_code}: {written.text[:300]}")
            else:
                raise RuntimeError(f"no update of item {item_id} in {MAX_ATTEMPTS_PER_UPDATE} attempts")

    started = time.perf_counter()
    await asyncio.gather(*(writer(number) for number in range(writers)))
    seconds = time.perf_counter() - started
    lost = 0
    for item_id in item_ids:
        final = await client.get(f"/v2/items/{item_id}")
        counted = int(final.json()["description"])
        revision = int(final.headers["etag"].strip('"').rsplit("-", 1)[1])
        # An update whose effect the counter lacks was lost; a revision out of step with
        # the successes means one was applied twice, or not at all.
        lost += abs(successes[item_id] - counted) + abs(revision - 1 - successes[item_id])
    return _phase(sum(successes.values()), seconds, latencies, statuses), lost


async def _idempotent_creations(
    client: httpx.AsyncClient, *, writers: int, creations: int
) -> tuple[PhaseResult, int]:
    tag = f"bench-{secrets.token_hex(4)}"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    limit = asyncio.Semaphore(writers)
    ids_by_key: dict[str, set[int]] = {}

    async def post(key: str) -> None:
        async with limit:
            response = await _timed(
                latencies,
                statuses,
                client.post,
                "/v2/items",
                json={"name": key, "price": {"amount": "2.00"}, "tags": [tag]},
                headers={"Idempotency-Key": key},
            )
        if response.status_code == 201:
            ids_by_key.setdefault(key, set()).add(response.json()["id"])
        elif response.status_code != 409:  # 409: the twin request was still running.
            raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")

    keys = [f"{tag}-{number}" for number in range(creations)]
    started = time.perf_counter()
    await asyncio.gather(*(post(key) for key in keys for _twice in range(2)))
    seconds = time.perf_counter() - started
    stored = 0
    cursor: str | None = None
    for _page in range(creations):  # Bounded: at most one page per creation.
        params: dict[str, str | int] = {"tag": tag, "limit": 100, **({"cursor": cursor} if cursor else {})}
        listed = await client.get("/v2/items", params=params)
        listed.raise_for_status()
        page = listed.json()
        stored += len(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    duplicates = stored - creations + sum(len(ids) - 1 for ids in ids_by_key.values())
    return _phase(creations, seconds, latencies, statuses), duplicates


@contextmanager
def _database(store: str, folder: Path) -> Iterator[str]:
    """A fresh, migrated database of the store; a PostgreSQL schema is dropped afterwards."""
    if store == "sqlite":
        sqlite_url = f"sqlite+aiosqlite:///{folder / 'catalog.sqlite3'}"
        _upgrade(sqlite_url, folder)
        yield sqlite_url
        return
    schema = f"bench_{secrets.token_hex(6)}"
    _execute_postgresql(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(DEFAULT_POSTGRESQL_URL).update_query_dict({"search_path": schema})
        postgresql_url = url.render_as_string(hide_password=False)
        _upgrade(postgresql_url, folder)
        yield postgresql_url
    finally:
        _execute_postgresql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _execute_postgresql(statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(DEFAULT_POSTGRESQL_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def _environment(database_url: str, **settings: str) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    environment.update(GATEWAY_DATABASE_URL=database_url, GATEWAY_ACCESS_LOG="false", PYTHONUNBUFFERED="1")
    # Longer than any pause of the run: the server never closes a keep-alive connection just
    # as the client reuses it (an httpx.ReadError that would count as nothing here).
    environment["GATEWAY_KEEPALIVE"] = "75"
    environment.update({f"GATEWAY_{name.upper()}": value for name, value in settings.items()})
    return environment


def _upgrade(database_url: str, folder: Path) -> None:
    subprocess.run(
        [GATEWAY, "db", "upgrade"],
        env=_environment(database_url),
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextmanager
def _gateway(database_url: str, folder: Path, workers: int) -> Iterator[tuple[str, int]]:
    """``gateway serve`` on a port of the OS's choosing, until it is ready; then SIGTERM."""
    log = (folder / "gateway.log").open("w+")
    process = subprocess.Popen(
        [GATEWAY, "serve", "--host", LOOPBACK, "--port", "0", "--workers", str(workers)],
        env=_environment(database_url),
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        origin = _wait_until_ready(process, folder / "gateway.log")
        yield origin, process.pid
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def _wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        listening = _LISTENING.search(log.read_text())
        if listening is not None:
            origin = f"http://{LOOPBACK}:{listening.group(1)}"
            try:
                if httpx.get(f"{origin}/health/ready", timeout=2, trust_env=False).status_code == 200:
                    return origin
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway serve did not become ready:\n{log.read_text()[-3000:]}")


async def _measure(origin: str, arguments: argparse.Namespace) -> tuple[PhaseResult, int, PhaseResult, int]:
    limits = httpx.Limits(max_connections=arguments.writers, max_keepalive_connections=arguments.writers)
    async with httpx.AsyncClient(base_url=origin, timeout=60, limits=limits, trust_env=False) as client:
        updates, lost = await _conditional_updates(
            client, writers=arguments.writers, items=arguments.items, updates=arguments.updates
        )
        creations, duplicates = await _idempotent_creations(
            client, writers=arguments.writers, creations=arguments.creations
        )
    return updates, lost, creations, duplicates


# Each kind of write the CPU measurement sends, one after another, by one client.
_CPU_WARM_UP = 100
_CPU_REQUESTS = 1000


def _worker_pid(arbiter_pid: int) -> int:
    children = Path(f"/proc/{arbiter_pid}/task/{arbiter_pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker under the arbiter, found {children}")
    return int(children[0])


def _cpu_seconds(pid: int) -> float:
    # utime and stime, fields 14 and 15 of /proc/PID/stat (after the command in parentheses).
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_per_write(origin: str, worker_pid: int, requests: int) -> dict[str, float]:
    """Microseconds of the worker's CPU per request, for each kind of uncontended write."""
    async with httpx.AsyncClient(base_url=origin, timeout=60, trust_env=False) as client:
        created = await client.post("/v2/items", json={"name": "cpu", "price": {"amount": "1.00"}})
        created.raise_for_status()
        item = f"/v2/items/{created.json()['id']}"
        etag = created.headers["etag"]

        async def post(number: int) -> httpx.Response:
            return await client.post(
                "/v2/items", json={"name": f"cpu {number}", "price": {"amount": "1.00"}, "tags": ["a", "b"]}
            )

        async def post_once(number: int) -> httpx.Response:
            body = {"name": f"cpu {number}", "price": {"amount": "1.00"}, "tags": ["a", "b"]}
            return await client.post(
                "/v2/items", json=body, headers={"Idempotency-Key": secrets.token_hex(8)}
            )

        async def patch(number: int) -> httpx.Response:
            return await client.patch(item, json={"description": str(number)})

        async def patch_if_match(number: int) -> httpx.Response:
            nonlocal etag
            response = await client.patch(item, json={"description": str(number)}, headers={"If-Match": etag})
            etag = response.headers.get("etag", etag)
            return response

        costs = {}
        kinds = {
            "POST": post,
            "POST Idempotency-Key": post_once,
            "PATCH": patch,
            "PATCH If-Match": patch_if_match,
        }
        for kind, send in kinds.items():
            etag = (await client.get(item)).headers["etag"]
            for number in range(_CPU_WARM_UP):
                (await send(number)).raise_for_status()
            started = _cpu_seconds(worker_pid)
            for number in range(requests):
                (await send(number)).raise_for_status()
            costs[kind] = round((_cpu_seconds(worker_pid) - started) / requests * 1e6, 1)
    return costs


def measure_cpu(store: str, requests: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix=f"catalog-writes-{store}-") as temporary,
        _database(store, Path(temporary)) as database_url,
        _gateway(database_url, Path(temporary), 1) as (origin, arbiter_pid),
    ):
        return asyncio.run(_cpu_per_write(origin, _worker_pid(arbiter_pid), requests))


def _postgresql_reachable() -> str | None:
    try:
        _execute_postgresql("SELECT 1")
    except Exception as error:  # Any failure means: measure SQLite only, and say why.
        return f"{type(error).__name__}: {error}"
    return None


def run(arguments: argparse.Namespace) -> list[StoreResult]:
    results = []
    for store in ["sqlite", "postgresql"] if arguments.store == "both" else [arguments.store]:
        if store == "postgresql" and (reason := _postgresql_reachable()) is not None:
            print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
            continue
        with (
            tempfile.TemporaryDirectory(prefix=f"catalog-writes-{store}-") as temporary,
            _database(store, Path(temporary)) as database_url,
            _gateway(database_url, Path(temporary), arguments.workers) as (origin, _arbiter_pid),
        ):
            updates, lost, creations, duplicates = asyncio.run(_measure(origin, arguments))
        results.append(
            StoreResult(store, arguments.workers, arguments.writers, updates, lost, creations, duplicates)
        )
    return results


def render(results: list[StoreResult]) -> str:
    lines = [
        "| store | phase | writes | writes/s | p50 ms | p99 ms | statuses | lost updates | duplicates |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for phase, counted in (
            ("PATCH If-Match", result.updates),
            ("POST Idempotency-Key x2", result.creations),
        ):
            lost = result.lost_updates if counted is result.updates else ""
            duplicates = result.duplicate_creations if counted is result.creations else ""
            statuses = ", ".join(f"{status}: {count}" for status, count in counted.statuses.items())
            lines.append(
                f"| {result.store} ({result.workers} workers, {result.writers} clients) | {phase} | {counted.writes} "
                f"| {counted.writes_per_second} | {counted.p50_ms} | {counted.p99_ms} | {statuses} | {lost} | {duplicates} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.catalog_writes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2, help="gateway serve's workers (default: 2)")
    parser.add_argument("--writers", type=int, default=32, help="concurrent clients (default: 32)")
    parser.add_argument("--items", type=int, default=8, help="items the updates spread over (default: 8)")
    parser.add_argument(
        "--updates", type=int, default=2000, help="successful updates to make (default: 2000)"
    )
    parser.add_argument("--creations", type=int, default=1000, help="idempotent creations (default: 1000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="the server's CPU per uncontended write instead (1 worker, 1 client)",
    )
    arguments = parser.parse_args(argv)
    if arguments.cpu:
        stores = ["sqlite", "postgresql"] if arguments.store == "both" else [arguments.store]
        print("| store | write | server CPU per request (us) |\n|---|---|--:|")
        for store in stores:
            if store == "postgresql" and (reason := _postgresql_reachable()) is not None:
                print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
                continue
            for kind, microseconds in measure_cpu(store, _CPU_REQUESTS).items():
                print(f"| {store} | {kind} | {microseconds:,.1f} |")
        return 0
    results = run(arguments)
    print(json.dumps([asdict(result) for result in results], indent=2) if arguments.json else render(results))
    # Correctness is part of the measurement: any lost or doubled write fails the run.
    return 1 if any(result.lost_updates or result.duplicate_creations for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
