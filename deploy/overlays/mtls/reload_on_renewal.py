"""Send SIGHUP to the gateway's Gunicorn arbiter when its mounted TLS files change.

The tls-reload sidecar of the mtls overlay runs this with the gateway image's Python. The
kubelet rewrites a Secret volume in one atomic swap (its ``..data`` symlink) some time after
cert-manager renews the Secret; the gateway reads its TLS files only when workers start, and
SIGHUP is its reload: the arbiter checks that the new files load (else it logs why and keeps
serving), then starts new workers on them while the old ones drain, without a failed request.
The arbiter's pid comes from Gunicorn's pid file, in the pod's shared process namespace.
Standard library only: the image holds nothing else for it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path


def fingerprint(folder: Path) -> str:
    """A digest of every file in ``folder`` (what the kubelet projects, through its symlinks)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # The kubelet's own ``..data`` and timestamped folders.
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def arbiter_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None  # Not started yet, or between writes: it reads the new files when it starts.


def log(message: str, **fields: object) -> None:
    print(json.dumps({"logger": "tls-reload", "message": message, **fields}), flush=True)


def reload_arbiter(pid_file: Path) -> None:
    pid = arbiter_pid(pid_file)
    if pid is None:
        log("TLS files changed; no arbiter to reload yet", pid_file=str(pid_file))
        return
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as error:
        log("TLS files changed; SIGHUP failed", pid=pid, error=str(error))
        return
    log("TLS files changed: sent SIGHUP to the gateway", pid=pid)


def watch(folder: Path, pid_file: Path, interval: float, iterations: int | None) -> None:
    seen = fingerprint(folder)
    log("watching TLS files", folder=str(folder), interval=interval)
    polls = 0
    while iterations is None or polls < iterations:
        polls += 1
        time.sleep(interval)
        try:
            current = fingerprint(folder)
        except OSError as error:  # Mid-swap on an unusual volume: look again next time.
            log("could not read the TLS files", error=str(error))
            continue
        if current != seen:
            seen = current
            reload_arbiter(pid_file)


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watch", type=Path, required=True, help="the folder the TLS Secret is mounted at")
    parser.add_argument("--pid-file", type=Path, required=True, help="Gunicorn's pid file (its --pid)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between looks")
    parser.add_argument("--iterations", type=int, default=None, help="stop after this many looks")
    options = parser.parse_args(arguments)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(options.watch, options.pid_file, options.interval, options.iterations)


if __name__ == "__main__":
    main()
