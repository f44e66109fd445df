"""The lifecycle report: for each version, where it is in its life and who still calls it.

Served as JSON at ``/internal/lifecycle`` and printed by ``gateway lifecycle``: the answer
to "who still calls v1, and what will they miss?" that decides a sunset date.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.versions import rfc3339

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from gateway.usage.recorder import UsageRecorder
    from gateway.usage.store import CallerUsage
    from gateway.versions import VersionEntry

_SECONDS_PER_DAY = 86_400


def lifecycle_route(entries: list[VersionEntry], usage: UsageRecorder) -> Route:
    """``GET /internal/lifecycle``: the report, summed over the process group."""

    async def report(request: Request) -> Response:
        callers = await usage.callers()
        return JSONResponse(lifecycle_report(entries, callers, datetime.now(UTC)))

    return Route("/lifecycle", report, methods=["GET"], name="lifecycle")


def lifecycle_report(
    entries: list[VersionEntry], callers: list[CallerUsage], now: datetime
) -> dict[str, Any]:
    return {
        "generated_at": rfc3339(now.replace(microsecond=0)),
        "versions": [_version(entry, callers, now) for entry in entries],
    }


def _version(entry: VersionEntry, callers: list[CallerUsage], now: datetime) -> dict[str, Any]:
    days_left = None
    if entry.sunset_at is not None:
        days_left = max(0, math.ceil((entry.sunset_at - now).total_seconds() / _SECONDS_PER_DAY))
    brownout = entry.brownout_at(now)
    own = [usage for usage in callers if usage.version == entry.name]
    return {
        "name": entry.name,
        "prefix": entry.prefix,
        "status": entry.lifecycle_at(now).value,
        "deprecated_at": _moment(entry.deprecated_at),
        "sunset_at": _moment(entry.sunset_at),
        "days_left": days_left,
        "successor": entry.successor,
        "brownouts": [
            {"start": rfc3339(window.start), "end": rfc3339(window.end)} for window in entry.brownouts
        ],
        "in_brownout": brownout is not None,
        "requests": sum(usage.requests for usage in own),
        "callers": [_caller(usage) for usage in sorted(own, key=lambda usage: usage.last_seen, reverse=True)],
    }


def _caller(usage: CallerUsage) -> dict[str, Any]:
    return {
        "caller": usage.caller,
        "requests": usage.requests,
        "refused": usage.refused,
        "first_seen": rfc3339(datetime.fromtimestamp(int(usage.first_seen), UTC)),
        "last_seen": rfc3339(datetime.fromtimestamp(int(usage.last_seen), UTC)),
        "routes": [{"route": route, "requests": requests} for route, requests in usage.top_routes],
        "status_classes": usage.status_classes,
    }


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal: one block per version, its callers by last seen."""
    lines = []
    for version in report["versions"]:
        when = (
            f", sunset {version['sunset_at']} ({version['days_left']} days left)"
            if version["sunset_at"]
            else ""
        )
        brownout = ", IN A BROWNOUT NOW" if version["in_brownout"] else ""
        lines.append(
            f"{version['name']} ({version['status']}{when}{brownout}): {version['requests']} requests"
        )
        if not version["callers"]:
            lines.append("  no callers seen")
        for caller in version["callers"]:
            routes = ", ".join(f"{route['route']} x{route['requests']}" for route in caller["routes"])
            refused = f", {caller['refused']} refused" if caller["refused"] else ""
            lines.append(
                f"  {caller['caller']}: {caller['requests']} requests{refused}, last {caller['last_seen']},"
                f" first {caller['first_seen']}; {routes}"
            )
    return "\n".join(lines) + "\n"
