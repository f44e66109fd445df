"""The bench's building blocks; the bench itself is not part of the suite (timings are noise in CI)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from bench.load import LoadResult, Request
from bench.plan import SERVERS, build_rows
from bench.profile import summarize
from bench.reference_apps import create_naive_hello, floor_app
from bench.report import RowResult, check_targets, format_rows

pytestmark = pytest.mark.anyio


async def test_the_naive_gateway_answers_through_its_base_class_middleware() -> None:
    app = create_naive_hello()
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
            response = await client.get("/v3/hello")
    assert response.json() == {"message": "hello"}
    assert len(response.headers["x-request-id"]) == 32


async def test_the_floor_answers_a_fixed_body() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=floor_app), base_url="http://bench.test"
    ) as client:
        response = await client.get("/anything")
    assert response.json() == {"message": "hello"}


def test_every_row_names_a_server_and_rows_that_exist() -> None:
    rows = build_rows('"1-1"')
    keys = {row.key for row in rows}
    assert len(keys) == len(rows)
    for row in rows:
        assert row.server in SERVERS
        assert row.compare_to is None or row.compare_to in keys
        assert all(target.baseline in keys for target in row.targets)


def test_the_table_shows_ratios_and_the_targets_say_whether_they_are_met() -> None:
    rows = {row.key: row for row in build_rows('"1-1"')}
    results = {key: RowResult(rows[key]) for key in ("1", "6a", "2a")}
    results["1"].runs = [LoadResult(10_000, 5.0, 9.0, 50_000, 0)]
    results["6a"].runs = [LoadResult(5_000, 10.0, 40.0, 25_000, 0), LoadResult(3_000, 12.0, 50.0, 15_000, 0)]
    results["2a"].skipped = "no server"
    table = format_rows(results)
    assert "| 6a | gateway | GET /health/live | wrk | 4,000 |" in table
    assert "0.40 x 1" in table
    assert "did not run: no server" in table
    checks = {check.description: check for check in check_targets(results, [])}
    assert checks["6a >= 0.4 x 1"].met
    # 6a: a median p99 of 45 ms over a median p50 of 11 ms.
    assert not checks["p99 <= 3 x p50 on every row"].met


def test_a_request_describes_itself() -> None:
    assert (
        Request("/items/1", headers=(("If-None-Match", '"1-1"'),)).describe()
        == "GET /items/1 (If-None-Match)"
    )


def test_a_profile_by_function_merges_the_lines_of_a_function(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        'process 1:"MainThread";run (a.py:1);edge (gateway/edge.py:10) 3\n'
        'process 1:"MainThread";run (a.py:1);edge (gateway/edge.py:12) 1\n'
    )
    assert "100.0%  edge (gateway/edge.py)" in summarize(raw, 5, by_function=True)
    assert "75.0%  edge (gateway/edge.py:10)" in summarize(raw, 5)
