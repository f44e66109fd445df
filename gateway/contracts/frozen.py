"""Each mounted version's OpenAPI document, frozen in ``contracts/<name>.json`` and checked.

A frozen contract is what the version promised its callers. ``check`` compares the live
document with it: a breaking change fails, an additive one is listed; a deprecated
version's contract may not change at all, since its callers are the ones least likely to
be watching. A change is accepted explicitly, by freezing again with ``accept`` naming
the version, and the new file is reviewed like code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.contracts.diff import compare_documents
from gateway.versions import Lifecycle

if TYPE_CHECKING:
    from gateway.contracts.schemas import Change
    from gateway.settings import Settings

CONTRACTS_DIRECTORY = Path("contracts")


@dataclass(frozen=True)
class LiveContract:
    name: str
    deprecated: bool
    document: dict[str, Any]


@dataclass(frozen=True)
class ContractCheck:
    contract: LiveContract
    # None: nothing frozen for this version yet.
    changes: list[Change] | None

    @property
    def breaking(self) -> list[Change]:
        return [change for change in self.changes or [] if change.breaking]

    @property
    def additive(self) -> list[Change]:
        return [change for change in self.changes or [] if not change.breaking]

    @property
    def passed(self) -> bool:
        if self.changes is None:
            return False
        if self.contract.deprecated:
            return not self.changes
        return not self.breaking

    def report(self) -> str:
        name = self.contract.name
        if self.changes is None:
            return f"{name}: no frozen contract; run `gateway contracts freeze`"
        if not self.changes:
            return f"{name}: unchanged"
        lines = [f"{name}: {len(self.breaking)} breaking, {len(self.additive)} additive"]
        lines += [f"  breaking  {change}" for change in self.breaking]
        lines += [f"  additive  {change}" for change in self.additive]
        if not self.passed:
            why = (
                "is deprecated: its contract may not change" if self.contract.deprecated else "breaks callers"
            )
            lines.append(f"  {name} {why}; to accept it, run `gateway contracts freeze --accept {name}`")
        return "\n".join(lines)


def live_contracts(settings: Settings, now: datetime | None = None) -> list[LiveContract]:
    """The OpenAPI document of every version the gateway would mount now."""
    from gateway.registry import build_mounted_app

    now = now or datetime.now(UTC)
    return [
        LiveContract(
            name=entry.name,
            deprecated=entry.lifecycle_at(now) is Lifecycle.DEPRECATED,
            document=build_mounted_app(entry.factory, settings).openapi(),
        )
        for entry in settings.versions
        if not entry.is_gone(now)
    ]


def contract_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def read_contract(directory: Path, name: str) -> dict[str, Any] | None:
    path = contract_path(directory, name)
    if not path.exists():
        return None
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def check_contracts(contracts: list[LiveContract], directory: Path) -> list[ContractCheck]:
    checks = []
    for contract in contracts:
        frozen = read_contract(directory, contract.name)
        changes = None if frozen is None else compare_documents(frozen, contract.document)
        checks.append(ContractCheck(contract, changes))
    return checks


def freeze_contracts(contracts: list[LiveContract], directory: Path, accept: set[str]) -> list[ContractCheck]:
    """Write every contract that is new, unchanged in substance, or accepted; return the
    checks of those refused (a breaking change, or any change to a deprecated version)."""
    refused = []
    directory.mkdir(parents=True, exist_ok=True)
    for check in check_contracts(contracts, directory):
        if check.changes is not None and not check.passed and check.contract.name not in accept:
            refused.append(check)
            continue
        contract_path(directory, check.contract.name).write_text(
            _serialised(check.contract.document), "utf-8"
        )
    return refused


def _serialised(document: dict[str, Any]) -> str:
    # Sorted and indented, so that a change to the contract reads as a small diff in review.
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_changelog(old_name: str, new_name: str, changes: list[Change]) -> str:
    """The changes from one version to another, in Markdown: a migration guide's skeleton."""
    breaking = [change for change in changes if change.breaking]
    additive = [change for change in changes if not change.breaking]
    lines = [f"# From {old_name} to {new_name}", ""]
    if not changes:
        return "\n".join([*lines, "No changes to the contract.", ""])
    for title, group in (("Breaking changes", breaking), ("Additions", additive)):
        if group:
            lines += [f"## {title}", ""]
            lines += [f"- `{change.where}`: {change.what}" for change in group]
            lines.append("")
    return "\n".join(lines)
