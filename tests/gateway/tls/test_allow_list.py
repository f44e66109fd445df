from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from gateway.tls.allow_list import AllowList

REPORTING = "spiffe://gateway.test/service/reporting"
BILLING = "spiffe://gateway.test/service/billing"
ADMIN = "spiffe://gateway.test/service/admin"


@pytest.fixture
def allow_list() -> AllowList:
    return AllowList(
        {
            "GET /internal/items/export": [REPORTING],
            "post /internal/items/import": [BILLING, REPORTING],
            "/internal/admin/**": [ADMIN],
            "DELETE /internal/items/*/tags": [ADMIN],
        }
    )


@pytest.mark.parametrize(
    ("method", "path", "identity", "allowed"),
    [
        ("GET", "/internal/items/export", REPORTING, True),
        # GET admits HEAD, which is GET without a body.
        ("HEAD", "/internal/items/export", REPORTING, True),
        ("GET", "/internal/items/export", BILLING, False),
        ("POST", "/internal/items/export", REPORTING, False),
        ("POST", "/internal/items/import", BILLING, True),
        ("POST", "/internal/items/import", REPORTING, True),
        ("POST", "/internal/items/import", ADMIN, False),
        # No method: any method. ** spans segments.
        ("PUT", "/internal/admin/a/b/c", ADMIN, True),
        ("PUT", "/internal/admin", ADMIN, False),
        # * stays within one segment.
        ("DELETE", "/internal/items/7/tags", ADMIN, True),
        ("DELETE", "/internal/items/7/8/tags", ADMIN, False),
        # A path that merely starts like an allowed one is another path.
        ("GET", "/internal/items/export/more", REPORTING, False),
        ("GET", "/internal/items/exporter", REPORTING, False),
        # Deny by default: nothing matches, nothing passes.
        ("GET", "/internal/items", ADMIN, False),
    ],
)
def test_rules_admit_only_the_identities_they_name(
    allow_list: AllowList, method: str, path: str, identity: str, allowed: bool
) -> None:
    assert allow_list.permits(method, path, identity) is allowed


def test_an_empty_allow_list_denies_everything() -> None:
    assert not AllowList({}).permits("GET", "/internal/items/export", REPORTING)


def test_identities_are_exact_not_patterns() -> None:
    allow_list = AllowList({"GET /internal/items/export": [REPORTING]})
    assert not allow_list.permits("GET", "/internal/items/export", REPORTING + "-2")
    assert not allow_list.permits("GET", "/internal/items/export", "spiffe://gateway.test/service/*")


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"GET /v2/items": [REPORTING]}, "covers /internal routes only"),
        ({"FETCH /internal/items/export": [REPORTING]}, "is not an HTTP method"),
        ({"GET /internal/items export": [REPORTING]}, "a rule is"),
        ({"GET internal/items": [REPORTING]}, "is not a path pattern"),
        ({"GET /internal/items/export": ["reporting"]}, "is not a SPIFFE ID"),
        ({"GET /internal/items/export": ["spiffe://gateway.test/service/*"]}, "is not a SPIFFE ID"),
    ],
)
def test_settings_refuse_rules_that_cannot_mean_what_they_say(
    rules: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, internal_allow=rules)


def test_settings_read_the_allow_list_from_json() -> None:
    settings = Settings(_env_file=None, internal_allow={"GET /internal/items/export": [REPORTING]})
    assert AllowList(settings.internal_allow).permits("GET", "/internal/items/export", REPORTING)
    with pytest.raises(ValidationError, match="is not a SPIFFE ID"):
        Settings(_env_file=None, trusted_proxies=["envoy"])
