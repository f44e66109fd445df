"""The lifecycle report: each version's place in its life, and its callers by last seen."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.usage.report import lifecycle_report, render_text
from gateway.usage.store import CallerUsage
from gateway.versions import VersionEntry

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _usage(caller: str, last_seen: datetime, requests: int = 3) -> CallerUsage:
    return CallerUsage(
        version="v1",
        caller=caller,
        requests=requests,
        refused=1,
        first_seen=datetime(2027, 1, 1, tzinfo=UTC).timestamp(),
        last_seen=last_seen.timestamp(),
        top_routes=[("/v1/items/{item_id}", requests)],
        status_classes={"2xx": requests - 1, "4xx": 1},
    )


def _registry() -> list[VersionEntry]:
    return [
        VersionEntry.model_validate(
            {
                "prefix": "/v1",
                "factory": "a:b",
                "status": "deprecated",
                "deprecated_at": "2026-09-01T00:00:00Z",
                "sunset_at": "2027-03-11T00:00:00Z",
                "successor": "/v2",
                "brownouts": [{"start": "2027-03-01T11:00:00Z", "end": "2027-03-01T13:00:00Z"}],
            }
        ),
        VersionEntry(prefix="/v2", factory="a:b"),
    ]


def test_the_report_lists_each_versions_lifecycle_and_callers_by_last_seen() -> None:
    callers = [
        _usage("spiffe://gateway.local/service/billing", datetime(2027, 2, 1, tzinfo=UTC)),
        _usage("spiffe://gateway.local/service/reporting", datetime(2027, 2, 27, tzinfo=UTC), requests=5),
    ]
    v1, v2 = lifecycle_report(_registry(), callers, NOW)["versions"]
    assert v1["status"] == "deprecated"
    assert v1["sunset_at"] == "2027-03-11T00:00:00Z"
    assert v1["days_left"] == 10
    assert v1["in_brownout"] is True
    assert v1["requests"] == 8
    assert [caller["caller"] for caller in v1["callers"]] == [
        "spiffe://gateway.local/service/reporting",
        "spiffe://gateway.local/service/billing",
    ]
    assert v1["callers"][0]["routes"] == [{"route": "/v1/items/{item_id}", "requests": 5}]
    assert v1["callers"][0]["last_seen"] == "2027-02-27T00:00:00Z"
    assert (v2["status"], v2["days_left"], v2["callers"]) == ("current", None, [])


def test_the_text_report_names_every_caller() -> None:
    report = lifecycle_report(_registry(), [_usage("anonymous", NOW)], NOW)
    text = render_text(report)
    assert (
        "v1 (deprecated, sunset 2027-03-11T00:00:00Z (10 days left), IN A BROWNOUT NOW): 3 requests" in text
    )
    assert "  anonymous: 3 requests, 1 refused, last 2027-03-01T12:00:00Z" in text
    assert "v2 (current): 0 requests\n  no callers seen" in text
