"""The README's settings tables and the settings classes name the same variables: the
gateway's tables document ``Settings``, the catalog's section documents ``CatalogSettings``."""

from __future__ import annotations

import re

from pydantic_settings import BaseSettings

from gateway.settings import ENV_PREFIX, SECRETS_DIR_VARIABLE, Settings
from services.catalog.settings import CatalogSettings
from tests.servers import PROJECT_ROOT

_VARIABLE = re.compile(rf"`{ENV_PREFIX}([A-Z0-9_]+)`")
_CATALOG_SECTION = "### The catalog's settings"


def _documented_in_tables(*, catalog: bool) -> set[str]:
    """The variables of the README's table rows, in the catalog's section or outside it."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    before, _, rest = readme.partition(_CATALOG_SECTION)
    catalog_part, _, after = rest.partition("\n## ")
    text = catalog_part if catalog else before + after
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    # A row documents the variables of its first cell ("`GATEWAY_HOST`, `GATEWAY_PORT`").
    return {f"{ENV_PREFIX}{name}" for row in rows for name in _VARIABLE.findall(row.split("|")[1])}


def _variables(settings: type[BaseSettings]) -> set[str]:
    return {f"{ENV_PREFIX}{name.upper()}" for name in settings.model_fields}


def test_every_gateway_setting_has_a_row_in_a_readme_table_and_nothing_else_does() -> None:
    assert sorted(_variables(Settings) - _documented_in_tables(catalog=False)) == []
    assert sorted(_documented_in_tables(catalog=False) - _variables(Settings) - {SECRETS_DIR_VARIABLE}) == []


def test_the_catalogs_table_documents_exactly_its_section() -> None:
    assert _documented_in_tables(catalog=True) == _variables(CatalogSettings)
