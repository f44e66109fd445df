"""The README's settings tables and the Settings class name the same variables."""

from __future__ import annotations

import re

from gateway.settings import ENV_PREFIX, SECRETS_DIR_VARIABLE, Settings
from tests.servers import PROJECT_ROOT

_VARIABLE = re.compile(rf"`{ENV_PREFIX}([A-Z0-9_]+)`")


def _documented_in_tables() -> set[str]:
    readme = (PROJECT_ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    # A row documents the variables of its first cell ("`GATEWAY_HOST`, `GATEWAY_PORT`").
    return {f"{ENV_PREFIX}{name}" for row in rows for name in _VARIABLE.findall(row.split("|")[1])}


def test_every_setting_has_a_row_in_a_readme_table() -> None:
    settings = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - _documented_in_tables()) == []


def test_every_variable_the_readme_tables_document_is_a_setting() -> None:
    settings = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | {SECRETS_DIR_VARIABLE}
    assert sorted(_documented_in_tables() - settings) == []
