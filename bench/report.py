"""From the runs of every row to one table: medians, ratios and the targets, met or not."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.load import LoadResult
    from bench.plan import Row

# Targets that hold for every row or every gateway server, besides each row's own.
MAX_P99_OVER_P50 = 3.0
MAX_RSS_MEGABYTES = 90.0
MAX_READY_SECONDS = 2.0


@dataclass
class RowResult:
    row: Row
    runs: list[LoadResult] = field(default_factory=list)
    skipped: str | None = None  # Why the row did not run.

    @property
    def requests_per_second(self) -> float:
        return statistics.median(run.requests_per_second for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)


@dataclass(frozen=True)
class ServerResult:
    name: str
    description: str
    ready_seconds: float | None
    rss_megabytes: list[float]
    ready_path: str
    skipped: str | None = None
    # The gateway's own servers are held to the memory and start-up targets.
    is_gateway: bool = True


@dataclass(frozen=True)
class TargetCheck:
    description: str
    measured: str
    met: bool


def ratio(results: dict[str, RowResult], key: str, baseline: str) -> float | None:
    row, base = results.get(key), results.get(baseline)
    if row is None or base is None or not row.runs or not base.runs:
        return None
    return row.requests_per_second / base.requests_per_second


def check_targets(results: dict[str, RowResult], servers: list[ServerResult]) -> list[TargetCheck]:
    checks = []
    for key, result in results.items():
        for target in result.row.targets:
            value = ratio(results, key, target.baseline)
            checks.append(
                TargetCheck(
                    f"{key} >= {target.minimum:g} x {target.baseline}",
                    "not measured" if value is None else f"{value:.2f}",
                    value is not None and value >= target.minimum,
                )
            )
    measured = [result for result in results.values() if result.runs]
    worst = max(measured, key=lambda result: result.p99_ms / max(result.p50_ms, 1e-9), default=None)
    if worst is not None:
        spread = worst.p99_ms / max(worst.p50_ms, 1e-9)
        checks.append(
            TargetCheck(
                f"p99 <= {MAX_P99_OVER_P50:g} x p50 on every row",
                f"worst {spread:.1f} ({worst.row.key}); over on: "
                + (
                    ", ".join(r.row.key for r in measured if r.p99_ms > MAX_P99_OVER_P50 * r.p50_ms) or "none"
                ),
                spread <= MAX_P99_OVER_P50,
            )
        )
    gateway_servers = [server for server in servers if server.is_gateway and server.skipped is None]
    if gateway_servers:
        heaviest = max(gateway_servers, key=lambda server: max(server.rss_megabytes, default=0.0))
        rss = max(heaviest.rss_megabytes, default=0.0)
        checks.append(
            TargetCheck(
                f"RSS <= {MAX_RSS_MEGABYTES:g} MB per worker (gateway servers)",
                f"largest {rss:.1f} MB ({heaviest.name})",
                rss <= MAX_RSS_MEGABYTES,
            )
        )
        slowest = max(gateway_servers, key=lambda server: server.ready_seconds or 0.0)
        checks.append(
            TargetCheck(
                f"start to first 200 on /health/ready <= {MAX_READY_SECONDS:g} s (gateway servers)",
                f"slowest {slowest.ready_seconds or 0:.2f} s ({slowest.name})",
                (slowest.ready_seconds or 0) <= MAX_READY_SECONDS,
            )
        )
    return checks


def format_rows(results: dict[str, RowResult]) -> str:
    lines = [
        "| row | stack | request | tool | req/s | p50 ms | p99 ms | p99/p50 | ratio | errors |",
        "|---|---|---|---|--:|--:|--:|--:|---|--:|",
    ]
    for key, result in results.items():
        row = result.row
        tool = row.tool + (", new conn." if row.new_connection_per_request else "")
        if not result.runs:
            lines.append(
                f"| {key} | {row.stack} | {row.request.describe()} | {tool} | did not run: {result.skipped} | | | | | |"
            )
            continue
        value = ratio(results, key, row.compare_to) if row.compare_to else None
        ratio_text = f"{value:.2f} x {row.compare_to}" if value is not None else ""
        lines.append(
            f"| {key} | {row.stack} | {row.request.describe()} | {tool} | {result.requests_per_second:,.0f}"
            f" | {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.p99_ms / max(result.p50_ms, 1e-9):.1f}"
            f" | {ratio_text} | {result.errors} |"
        )
    return "\n".join(lines)


def format_servers(servers: list[ServerResult]) -> str:
    lines = [
        "| server | what | start to first 200 (s) | on | RSS per worker after warm-up (MB) |",
        "|---|---|--:|---|---|",
    ]
    for server in servers:
        if server.skipped is not None:
            lines.append(f"| {server.name} | {server.description} | did not start: {server.skipped} | | |")
            continue
        rss = ", ".join(f"{value:.1f}" for value in server.rss_megabytes)
        lines.append(
            f"| {server.name} | {server.description} | {server.ready_seconds or 0:.2f} | {server.ready_path} | {rss} |"
        )
    return "\n".join(lines)


def format_targets(checks: list[TargetCheck]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [
        f"| {check.description} | {check.measured} | {'yes' if check.met else 'NO'} |" for check in checks
    ]
    return "\n".join(lines)
