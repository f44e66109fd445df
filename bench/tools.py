"""The load generators, and the bench's one set-up step that installs them.

wrk (Debian) drives every plain-HTTP row: one thread on its own core saturates these
servers, which no Python client can. wrk cannot present a TLS client certificate, so the
keep-alive TLS rows use autocannon (npm), which can. Its option for a new connection per
request drops each connection before reading the response, so the new-connection rows use
ab (apache2-utils), which opens one per request anyway and takes a client certificate.
Plain HTTP, TLS and mTLS are measured with the same tool within each of the two groups.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Debian package of each command the bench runs.
DEBIAN_PACKAGES = {
    "wrk": "wrk",
    "ab": "apache2-utils",
    "node": "nodejs",
    "npm": "npm",
    "taskset": "util-linux",
}
AUTOCANNON_PACKAGE = "autocannon@8"
TOOLS_DIRECTORY = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gateway-bench"


class MissingToolError(RuntimeError):
    pass


def autocannon_command() -> list[str]:
    return [str(TOOLS_DIRECTORY / "node_modules" / ".bin" / "autocannon")]


def missing_tools() -> list[str]:
    missing = [command for command in DEBIAN_PACKAGES if shutil.which(command) is None]
    if not Path(autocannon_command()[0]).exists():
        missing.append("autocannon")
    return missing


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise MissingToolError(
            f"missing: {', '.join(missing)}; run `{Path(sys.executable).name} -m bench setup` first"
        )


def install_tools() -> None:
    """Install what is missing: Debian packages with apt-get (as root), autocannon with npm."""
    packages = sorted(
        {DEBIAN_PACKAGES[command] for command in DEBIAN_PACKAGES if shutil.which(command) is None}
    )
    if packages:
        if os.geteuid() != 0:
            raise MissingToolError(f"run as root, or install first: apt-get install -y {' '.join(packages)}")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=environment)
    if not Path(autocannon_command()[0]).exists():
        TOOLS_DIRECTORY.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(TOOLS_DIRECTORY),
                "--no-audit",
                "--no-fund",
                AUTOCANNON_PACKAGE,
            ],
            check=True,
        )
    require_tools()
