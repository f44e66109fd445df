"""The lock of the tested set: it satisfies pyproject.toml, and it is what is installed."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.servers import PROJECT_ROOT

LOCK = PROJECT_ROOT / "constraints.txt"


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = pinned
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    declared = [
        *project["dependencies"],
        *(item for extra in project["optional-dependencies"].values() for item in extra),
    ]
    return [Requirement(text) for text in declared]


def test_the_lock_pins_versions_from_the_index_only() -> None:
    # A path or URL (the project itself, as `pip freeze` writes it) cannot install elsewhere.
    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    assert [line for line in lines if "==" not in line or " @ " in line] == []


def test_every_dependency_is_locked_within_its_declared_range() -> None:
    locked = _locked()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in constraints.txt: run scripts/lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={locked[name]}, outside {requirement.specifier}: run scripts/lock"
        )


def test_the_installed_packages_are_the_locked_ones() -> None:
    # The suite must have run on the set a fresh machine installs (the bench extra aside).
    mismatched = []
    for name, pinned in _locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        if installed != pinned:
            mismatched.append(f"{name} {installed} (locked {pinned})")
    assert mismatched == [], "installed packages differ from constraints.txt: " + ", ".join(mismatched)
