"""The registry is data: validated once, at start-up, with messages that say what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, describe_validation_error
from gateway.versions import Lifecycle, VersionEntry, default_registry


def test_the_shipped_registry_has_v1_deprecated_and_v2_current() -> None:
    v1, v2 = default_registry()
    assert (v1.prefix, v1.status, v1.successor) == ("/v1", Lifecycle.DEPRECATED, "/v2")
    assert (v2.prefix, v2.status) == ("/v2", Lifecycle.CURRENT)
    assert v1.sunset_at is not None
    assert v1.deprecated_at is not None
    assert v1.deprecated_at <= v1.sunset_at


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"prefix": "v1", "factory": "a.b:c"}, "one path segment"),
        ({"prefix": "/v1/x", "factory": "a.b:c"}, "one path segment"),
        ({"prefix": "/health", "factory": "a.b:c"}, "reserved"),
        ({"prefix": "/v1", "factory": "a.b.c"}, "package.module:function"),
        ({"prefix": "/v1", "factory": "a:b", "status": "deprecated"}, "needs deprecated_at"),
        ({"prefix": "/v1", "factory": "a:b", "status": "retired"}, "Input should be"),
        (
            {
                "prefix": "/v1",
                "factory": "a:b",
                "status": "deprecated",
                "deprecated_at": "2026-05-01T00:00:00Z",
                "sunset_at": "2026-04-01T00:00:00Z",
            },
            "earlier than deprecated_at",
        ),
    ],
)
def test_an_impossible_entry_is_refused(entry: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VersionEntry.model_validate(entry)


_DEPRECATED = {
    "prefix": "/v1",
    "factory": "a:b",
    "status": "deprecated",
    "deprecated_at": "2026-01-01T00:00:00Z",
    "sunset_at": "2026-12-31T00:00:00Z",
}


@pytest.mark.parametrize(
    ("brownouts", "message"),
    [
        ([("2026-03-01T12:00:00Z", "2026-03-01T11:00:00Z")], "must end after it starts"),
        ([("2025-12-31T00:00:00Z", "2026-01-02T00:00:00Z")], "starts before deprecated_at"),
        ([("2026-12-30T00:00:00Z", "2027-01-02T00:00:00Z")], "ends after sunset_at"),
        (
            [
                ("2026-03-01T12:00:00Z", "2026-03-01T14:00:00Z"),
                ("2026-03-01T13:00:00Z", "2026-03-01T15:00:00Z"),
            ],
            "overlap",
        ),
    ],
)
def test_impossible_brownouts_are_refused(brownouts: list[tuple[str, str]], message: str) -> None:
    windows = [{"start": start, "end": end} for start, end in brownouts]
    with pytest.raises(ValidationError, match=message):
        VersionEntry.model_validate({**_DEPRECATED, "brownouts": windows})


def test_brownouts_need_a_deprecation() -> None:
    window = {"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T13:00:00Z"}
    with pytest.raises(ValidationError, match="brownouts need deprecated_at"):
        VersionEntry.model_validate({"prefix": "/v1", "factory": "a:b", "brownouts": [window]})


def test_a_brownout_covers_its_window_from_start_to_end() -> None:
    windows = [
        {"start": "2026-03-01T12:00:00+01:00", "end": "2026-03-01T13:00:00+01:00"},
        {"start": "2026-04-01T12:00:00Z", "end": "2026-04-01T13:00:00Z"},
    ]
    entry = VersionEntry.model_validate({**_DEPRECATED, "brownouts": windows})
    assert entry.brownout_at(datetime(2026, 3, 1, 10, 59, tzinfo=UTC)) is None
    assert entry.brownout_at(datetime(2026, 3, 1, 11, 0, tzinfo=UTC)) == entry.brownouts[0]
    assert entry.brownout_at(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) is None
    assert entry.brownout_at(datetime(2026, 4, 1, 12, 30, tzinfo=UTC)) == entry.brownouts[1]


def test_duplicate_prefixes_and_unknown_successors_are_refused() -> None:
    entry = {"prefix": "/v1", "factory": "a:b"}
    with pytest.raises(ValidationError, match="registered twice: /v1"):
        Settings(_env_file=None, versions=[entry, entry])
    with pytest.raises(ValidationError, match="successor /v9 is not registered"):
        Settings(_env_file=None, versions=[{**entry, "successor": "/v9"}])


def test_naive_dates_are_taken_as_utc() -> None:
    entry = VersionEntry(
        prefix="/v1", factory="a:b", status=Lifecycle.DEPRECATED, deprecated_at="2026-01-01T00:00:00"
    )
    assert entry.deprecated_at is not None
    assert entry.deprecated_at.isoformat() == "2026-01-01T00:00:00+00:00"


def test_an_operator_mounts_a_version_with_json_in_gateway_versions(tmp_path: Path) -> None:
    registry = [
        {"prefix": "/v2", "factory": "services.v2:create_app"},
        {"prefix": "/v3", "factory": "tests.versions.probe:create_app", "status": "current"},
    ]
    env_file = tmp_path / ".env"
    env_file.write_text(f"GATEWAY_VERSIONS='{json.dumps(registry)}'\n")
    settings = Settings(_env_file=env_file)
    assert [entry.prefix for entry in settings.versions] == ["/v2", "/v3"]


def test_an_invalid_variable_is_named_in_the_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('GATEWAY_PORT=eighty\nGATEWAY_VERSIONS=\'[{"prefix": "/v1"}]\'\n')
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=env_file)
    message = describe_validation_error(caught.value)
    assert "GATEWAY_PORT: Input should be a valid integer" in message
    assert "GATEWAY_VERSIONS (0.factory): Field required" in message
