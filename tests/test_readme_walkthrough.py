"""The README's walk-throughs, run as written: the mTLS one must end with a successful export,
the retirement one with both callers refused in a brownout and counted."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from gateway.settings import ENV_PREFIX
from tests.servers import PROJECT_ROOT
from tests.services.databases import closed_port

if TYPE_CHECKING:
    from pathlib import Path

WALKTHROUGH_HEADING = "### Service-to-service with mTLS: a walk-through"
RETIREMENT_HEADING = "### Retiring a version: a walk-through"
# Gunicorn drains for up to its graceful timeout; this is well past it.
GROUP_STOP_TIMEOUT = 30.0
_FIRST_SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def walkthrough_commands(heading: str = WALKTHROUGH_HEADING) -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    block = _FIRST_SHELL_BLOCK.search(section)
    assert block is not None, "the walk-through has no sh block"
    return block.group(1)


def test_the_walkthrough_ends_with_a_successful_export(tmp_path: Path) -> None:
    returncode, printed, complained = _run_walkthrough(walkthrough_commands(), tmp_path)
    assert returncode == 0, f"{printed}\n{complained}"
    # The gateway's own JSON log lines are interleaved; the export's lines are items.
    items = [line for line in map(_json_or_none, printed.splitlines()) if line and "revision" in line]
    assert [(item["id"], item["name"], item["price"]["amount"]) for item in items] == [(1, "Teapot", "12.50")]
    # The refused export came before, and said why.
    assert "403 Forbidden" in complained


def test_the_retirement_walkthrough_names_both_callers_and_their_brownout_refusals(tmp_path: Path) -> None:
    returncode, printed, complained = _run_walkthrough(walkthrough_commands(RETIREMENT_HEADING), tmp_path)
    assert returncode == 0, f"{printed}\n{complained}"
    reports = [block for block in printed.split("\nv1 (")[1:] if block.startswith("deprecated")]
    assert len(reports) == 2, printed
    before, during = reports
    for service in ("billing", "reporting"):
        assert f"spiffe://gateway.local/service/{service}: 1 requests," in before, before
        # Counted across the reload (two workers replaced), with the brownout's refusal.
        assert f"spiffe://gateway.local/service/{service}: 2 requests, 1 refused," in during, during
    assert "IN A BROWNOUT NOW" in during
    assert complained.count("410 Gone") == 2, complained


def _run_walkthrough(commands: str, tmp_path: Path) -> tuple[int, str, str]:
    # A fresh folder with the project's .venv in it, as after the README's first command.
    (tmp_path / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    environment = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    # The one change: a free port instead of 8000, which a developer's gateway may hold.
    environment[f"{ENV_PREFIX}PORT"] = str(closed_port())
    output, errors = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with output.open("w") as stdout, errors.open("w") as stderr:
        # Files, not pipes: the gateway started in the background inherits them and outlives bash.
        process = subprocess.Popen(
            ["bash", "-c", commands],
            cwd=tmp_path,
            env=environment,
            stdout=stdout,
            stderr=stderr,
            # A group of its own: the gateway started in the background is stopped with it.
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=120)
        finally:
            _stop_group(process.pid)
    return returncode, output.read_text(), errors.read_text()


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _stop_group(group: int) -> None:
    """SIGTERM the walk-through's process group (the gateway it left running), and wait for
    it to be gone; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + GROUP_STOP_TIMEOUT
        while time.monotonic() < deadline:
            os.killpg(group, 0)  # ProcessLookupError once every member has exited.
            time.sleep(0.1)
        os.killpg(group, signal.SIGKILL)
