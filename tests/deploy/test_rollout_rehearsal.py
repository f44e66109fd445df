"""scripts/rollout-rehearsal, run by the suite: three `gateway serve` replicas on PostgreSQL
behind Debian's HAProxy, replaced one at a time by a release with one more migration while
keep-alive clients read and write through HAProxy. No request may fail and no acknowledged
write may be missing. Light traffic keeps it quick; the script's defaults (and --duration)
are for a longer run by hand."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.catalog.migrate import code_revisions
from tests.deploy.files import PROJECT_ROOT

REHEARSAL = PROJECT_ROOT / "scripts" / "rollout-rehearsal"
SUMMARY = re.compile(r"^failed (?P<failed>\d+) of (?P<total>\d+) requests, p99 [\d.]+ ms, [\d.]+ s$")
# The script bounds itself; the test bounds the script, with room for its clean-up.
SCRIPT_TIMEOUT = 140
TEST_TIMEOUT = SCRIPT_TIMEOUT + 30
# Even a slow run sends this many requests across the three replacements.
MINIMUM_REQUESTS = 100


def _haproxy() -> str | None:
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


@pytest.mark.skipif(
    _haproxy() is None,
    reason="no haproxy: the rollout rehearsal needs Debian's (scripts/test installs it when run as root)",
)
def test_a_rolling_deploy_with_a_migration_fails_no_request_and_loses_no_write(
    postgresql_server: str,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REHEARSAL),
            *("--clients", "2", "--rate", "15", "--warm-up", "1", "--settle", "1"),
            *("--timeout", str(SCRIPT_TIMEOUT), "--database-url", postgresql_server),
        ],
        capture_output=True,
        text=True,
        timeout=TEST_TIMEOUT,
        check=False,
    )
    output = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    lines = result.stdout.strip().splitlines()
    summary = SUMMARY.match(lines[-1]) if lines else None
    assert summary is not None, output
    assert result.returncode == 0, output
    assert int(summary["failed"]) == 0, output
    assert int(summary["total"]) >= MINIMUM_REQUESTS, output
    assert re.search(r"\b0 missing afterwards", result.stderr), output
    # The first new replica migrated while the old ones served; the others found it current.
    assert result.stderr.count("upgraded the schema from revision 0001 to 0002") == 1, output
    assert "every old replica drained and exited" in result.stderr, output


def _rehearsal_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("rollout_rehearsal", str(REHEARSAL))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up by name while the class is made.
    sys.modules.setdefault(loader.name, module)
    loader.exec_module(sys.modules[loader.name])
    return sys.modules[loader.name]


def test_the_new_release_adds_one_migration_to_a_copy_of_the_tree(tmp_path: Path) -> None:
    versions = PROJECT_ROOT / "services" / "catalog" / "migrations" / "versions"
    before = sorted(versions.glob("*.py"))
    release = _rehearsal_module().build_new_release(tmp_path / "release")
    copied_versions = release.source / "services" / "catalog" / "migrations" / "versions"

    new_revisions = code_revisions(copied_versions.parent)
    assert new_revisions[:-1] == code_revisions()
    # The copy's code knows its own new revision, so it serves the schema as current, not ahead.
    schema = (release.source / "services" / "catalog" / "schema.py").read_text(encoding="utf-8")
    listed = ", ".join(f'"{revision}"' for revision in new_revisions)
    assert f"REVISIONS = ({listed})" in schema
    assert sorted(versions.glob("*.py")) == before
