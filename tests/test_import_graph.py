"""The core's boundary: the gateway imports no app, and an app imports only ``gateway.api``."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.servers import PROJECT_ROOT

PUBLIC_MODULE = "gateway.api"


def _imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import in ``package``, type-checking ones included."""
    found = []
    for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(_relative(path), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
                found.append((_relative(path), node.module))
    return found


def _relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_gateway_imports_no_app() -> None:
    offending = [
        f"{file}: {module}" for file, module in _imports("gateway") if _is_within(module, "services")
    ]
    assert offending == [], "the gateway names apps only by registry strings:\n" + "\n".join(offending)


def test_apps_reach_the_gateway_only_through_its_public_module() -> None:
    offending = [
        f"{file}: {module}"
        for file, module in _imports("services")
        if _is_within(module, "gateway") and module != PUBLIC_MODULE
    ]
    assert offending == [], f"an app imports only {PUBLIC_MODULE} of the gateway:\n" + "\n".join(offending)


def test_the_walk_finds_the_imports_it_checks() -> None:
    # Guards the two tests above against passing on an empty walk.
    assert ("services/v2/__init__.py", "services.catalog.commands") in _imports("services")
    assert any(module == PUBLIC_MODULE for _, module in _imports("services"))
