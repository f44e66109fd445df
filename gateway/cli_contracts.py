"""``gateway contracts``: freeze each version's OpenAPI document, check the live ones, diff two.

- ``freeze``: write ``contracts/<name>.json`` for every mounted version; a breaking change,
  or any change to a deprecated version, is written only with ``--accept NAME``.
- ``check``: compare every live document with its frozen copy; exit 1 on a breaking change
  (or any change to a deprecated version), listing every change; additions alone pass.
- ``diff OLD NEW``: the changes from one version's live document to another's, in Markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.contracts.frozen import LiveContract


def add_contracts_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gateway contracts freeze|check|diff``."""
    contracts = commands.add_parser(
        "contracts", help="frozen API contracts: freeze, check for breaking changes, diff"
    )
    actions = contracts.add_subparsers(dest="contracts_command", metavar="{freeze,check,diff}", required=True)
    freeze = actions.add_parser("freeze", help="write every mounted version's OpenAPI document to contracts/")
    freeze.add_argument(
        "--accept",
        action="append",
        default=[],
        metavar="NAME",
        help="accept a breaking change to this version (or any change to a deprecated one); repeatable",
    )
    freeze.set_defaults(run=_freeze)
    check = actions.add_parser(
        "check", help="compare the live contracts with the frozen ones (exit 1 on a break)"
    )
    check.set_defaults(run=_check)
    diff = actions.add_parser("diff", help="the changes from one version to another, in Markdown")
    diff.add_argument("old", help="a version's name, e.g. v1")
    diff.add_argument("new", help="a version's name, e.g. v2")
    diff.set_defaults(run=_diff)
    for action in (freeze, check):
        action.add_argument(
            "--dir", type=Path, default=None, help="folder of the frozen contracts (default: contracts/)"
        )


def _live() -> list[LiveContract]:
    from gateway.cli import _load_settings
    from gateway.contracts.frozen import live_contracts

    return live_contracts(_load_settings())


def _directory(arguments: argparse.Namespace) -> Path:
    from gateway.contracts.frozen import CONTRACTS_DIRECTORY

    directory: Path = arguments.dir or CONTRACTS_DIRECTORY
    return directory


def _freeze(arguments: argparse.Namespace) -> None:
    from gateway.contracts.frozen import contract_path, freeze_contracts

    contracts = _live()
    unknown = set(arguments.accept) - {contract.name for contract in contracts}
    if unknown:
        _fail(f"--accept {', '.join(sorted(unknown))}: no such version is mounted", status=2)
    directory = _directory(arguments)
    refused = freeze_contracts(contracts, directory, set(arguments.accept))
    for contract in contracts:
        if contract.name not in {check.contract.name for check in refused}:
            print(f"gateway contracts: froze {contract_path(directory, contract.name)}")
    if refused:
        print("\n".join(check.report() for check in refused), file=sys.stderr)
        raise SystemExit(1)


def _check(arguments: argparse.Namespace) -> None:
    from gateway.contracts.frozen import check_contracts

    checks = check_contracts(_live(), _directory(arguments))
    print("\n".join(check.report() for check in checks))
    if not all(check.passed for check in checks):
        raise SystemExit(1)


def _diff(arguments: argparse.Namespace) -> None:
    from gateway.contracts.diff import compare_documents
    from gateway.contracts.frozen import render_changelog

    documents = {contract.name: contract.document for contract in _live()}
    for name in (arguments.old, arguments.new):
        if name not in documents:
            _fail(f"{name}: no such version is mounted (mounted: {', '.join(documents)})", status=2)
    changes = compare_documents(documents[arguments.old], documents[arguments.new])
    print(render_changelog(arguments.old, arguments.new, changes), end="")


def _fail(message: str, *, status: int) -> None:
    print(f"gateway contracts: {message}", file=sys.stderr)
    raise SystemExit(status)
