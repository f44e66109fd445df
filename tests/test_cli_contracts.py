"""``gateway contracts``, run as a team runs it in CI, on an app the repository does not know."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.servers import GATEWAY_COMMAND, run_gateway

# A team's API: what it answers changes with TEAM_API_CHANGE, as a commit would change it.
_TEAM_API = textwrap.dedent(
    """
    import os

    from fastapi import FastAPI
    from pydantic import BaseModel


    class Order(BaseModel):
        id: int
        total: str
        if os.environ.get("TEAM_API_CHANGE") != "removed-field":
            note: str | None = None
        if os.environ.get("TEAM_API_CHANGE") == "added-field":
            currency: str = "EUR"


    def create_app():
        app = FastAPI(title="Orders")

        @app.get("/orders/{order_id}")
        def read_order(order_id: int) -> Order:
            return Order(id=order_id, total="1.00")

        return app
    """
)


def _registry(*, deprecated: bool) -> str:
    entry: dict[str, object] = {"prefix": "/orders-v1", "factory": "team_api:create_app"}
    if deprecated:
        entry.update(status="deprecated", deprecated_at="2026-01-01T00:00:00Z")
    return json.dumps([entry, {"prefix": "/orders-v2", "factory": "team_api:create_app"}])


def _contracts(
    tmp_path: Path, *arguments: str, change: str = "", deprecated: bool = False
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "team_api.py").write_text(_TEAM_API)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    environment.update(
        PYTHONPATH=str(tmp_path),
        TEAM_API_CHANGE=change,
        GATEWAY_VERSIONS=_registry(deprecated=deprecated),
    )
    return run_gateway(("contracts", *arguments), env=environment, cwd=tmp_path, timeout=60)


@pytest.fixture
def frozen(tmp_path: Path) -> Path:
    result = _contracts(tmp_path, "freeze")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "contracts" / "orders-v1.json").exists()
    return tmp_path


def test_an_unchanged_api_passes_the_check(frozen: Path) -> None:
    result = _contracts(frozen, "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["orders-v1: unchanged", "orders-v2: unchanged"]


def test_a_removed_field_fails_the_check_in_words(frozen: Path) -> None:
    result = _contracts(frozen, "check", change="removed-field")
    assert result.returncode == 1
    assert "breaking  GET /orders/{order_id} response 200 body.note: field removed" in result.stdout
    assert "gateway contracts freeze --accept orders-v2" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_added_field_passes_but_is_listed(frozen: Path) -> None:
    result = _contracts(frozen, "check", change="added-field")
    assert result.returncode == 0, result.stdout
    assert "additive  GET /orders/{order_id} response 200 body.currency: new field" in result.stdout


def test_a_deprecated_versions_contract_may_not_change_at_all(frozen: Path) -> None:
    result = _contracts(frozen, "check", change="added-field", deprecated=True)
    assert result.returncode == 1
    assert "orders-v1 is deprecated: its contract may not change" in result.stdout
    # The current version may grow.
    assert "orders-v2 is deprecated" not in result.stdout


def test_freeze_refuses_a_breaking_change_until_accepted(frozen: Path) -> None:
    before = (frozen / "contracts" / "orders-v2.json").read_text()
    refused = _contracts(frozen, "freeze", change="removed-field")
    assert refused.returncode == 1
    assert "field removed" in refused.stderr
    assert (frozen / "contracts" / "orders-v2.json").read_text() == before

    accepted = _contracts(
        frozen, "freeze", "--accept", "orders-v1", "--accept", "orders-v2", change="removed-field"
    )
    assert accepted.returncode == 0, accepted.stderr
    assert _contracts(frozen, "check", change="removed-field").returncode == 0


def test_freeze_names_an_unknown_version(frozen: Path) -> None:
    result = _contracts(frozen, "freeze", "--accept", "v9")
    assert result.returncode == 2
    assert result.stderr.strip() == "gateway contracts: --accept v9: no such version is mounted"


def test_diff_prints_a_markdown_changelog(tmp_path: Path) -> None:
    result = _contracts(tmp_path, "diff", "orders-v1", "orders-v2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "# From orders-v1 to orders-v2\n\nNo changes to the contract.\n"


def test_the_shipped_versions_match_their_frozen_contracts() -> None:
    """The suite's own check: a change to the catalog that breaks v1 or v2 fails here."""
    repository = Path(__file__).resolve().parent.parent
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    result = run_gateway(("contracts", "check"), env=environment, cwd=repository, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    # As `gateway contracts diff v1 v2 | head -1` once head has exited: every write fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [str(GATEWAY_COMMAND), "contracts", "diff", "v1", "v2"],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
