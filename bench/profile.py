"""``python -m bench.profile ROW [--seconds S]``: where one row's time goes.

Starts the row's server as the bench does, drives it with the row's load, samples the
serving process with py-spy meanwhile (non-blocking, from the load core) and prints the
functions with the most samples, inclusive and exclusive, for the serving thread.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.load import run_load
from bench.plan import SERVERS, build_rows
from bench.runner import _seed
from bench.servers import start_server, stop_server
from bench.workspace import DEFAULT_POSTGRES_URL, postgres_reachable, prepare_workspace, remove_workspace


def _function_of(frame: str) -> str:
    """``name (file:line)`` as ``name (file)``: py-spy names a frame by its current line."""
    name, _, location = frame.rpartition(" (")
    return f"{name} ({location.rsplit(':', 1)[0]})" if name else frame


def summarize(raw_profile: Path, top: int, by_function: bool = False) -> str:
    exclusive: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if by_function:
            frames = [frames[0], *map(_function_of, frames[1:])]
        # py-spy's first frame names the thread; the event loop runs on the main one.
        if "MainThread" not in frames[0] and "(gunicorn" not in frames[0]:
            continue
        total += int(count)
        exclusive[frames[-1]] += int(count)
        for frame in set(frames[1:]):
            inclusive[frame] += int(count)
    lines = [f"{total} samples of the serving thread", "", "inclusive:"]
    lines += [f"{count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    lines += ["", "exclusive:"]
    lines += [f"{count / total:6.1%}  {frame}" for frame, count in exclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("row", help="the row's key, e.g. 6a")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--by-function", action="store_true", help="merge a function's lines into one entry")
    arguments = parser.parse_args()
    postgres_url = DEFAULT_POSTGRES_URL if postgres_reachable(DEFAULT_POSTGRES_URL) else None
    workspace = prepare_workspace(Path(tempfile.mkdtemp(prefix="gateway-profile-")), postgres_url)
    try:
        row = next(row for row in build_rows("") if row.key == arguments.row)
        server = start_server(SERVERS[row.server], workspace, cpus="0")
        try:
            etag = _seed({row.server: server}, workspace)
            row = next(row for row in build_rows(etag) if row.key == arguments.row)
            certificates = workspace.certificates
            load = threading.Thread(
                target=run_load,
                args=(row.tool, server.base_url, row.request),
                kwargs={
                    "seconds": arguments.seconds + 2,
                    "cpus": "1",
                    "new_connection_per_request": row.new_connection_per_request,
                    "certificate": (certificates.client, certificates.client_key)
                    if server.spec.client_certificate
                    else None,
                    "ca_file": certificates.ca if server.spec.tls else None,
                },
            )
            load.start()
            raw_profile = workspace.directory / "profile.txt"
            py_spy = str(Path(sys.executable).parent / "py-spy")
            sample = ["record", "--nonblocking", "--threads", "--rate", "200", "--format", "raw"]
            sample += ["--duration", str(arguments.seconds), "--output", str(raw_profile)]
            subprocess.run(
                ["taskset", "-c", "1", py_spy, *sample, "--pid", str(server.worker_pids()[0])],
                check=True,
                capture_output=True,
            )
            load.join()
            print(summarize(raw_profile, arguments.top, arguments.by_function))
        finally:
            stop_server(server)
    finally:
        remove_workspace(workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
