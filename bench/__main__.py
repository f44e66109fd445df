"""``python -m bench [--quick] [--only REGEX] [--output FILE]``, and ``python -m bench setup``."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from bench.report import check_targets, format_rows, format_servers, format_targets
from bench.runner import Options, Report, run
from bench.tools import MissingToolError, install_tools
from bench.workspace import DEFAULT_POSTGRES_URL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="What each layer of the gateway costs: real servers, wrk/autocannon, one table.",
    )
    parser.add_argument(
        "action", nargs="?", choices=["run", "setup"], default="run", help="setup installs wrk and autocannon"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one round of 2 s runs (about 3 minutes): a smoke run, not a result",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="length of each measured run (default 5; quick 2)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds, the median is reported (default 3; quick 1)",
    )
    parser.add_argument(
        "--only", default=None, help="measure only the rows whose key matches this regular expression"
    )
    parser.add_argument("--server-cpus", default="0", help="CPUs the servers are pinned to (taskset list)")
    parser.add_argument("--load-cpus", default="1", help="CPUs the load generator is pinned to")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="PostgreSQL for rows 9 (a schema of its own is made and dropped); '' to skip",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write the report (Markdown) to this file"
    )
    parser.add_argument("--keep-workspace", action="store_true", help="keep the servers' folder and logs")
    return parser  # fmt: skip


def render(report: Report) -> str:
    options = report.options
    machine = "\n".join(f"- {name}: {value}" for name, value in report.machine.items())
    return "\n\n".join(
        [
            f"Command: `{report.command}`",
            f"{options.rounds} interleaved round(s) of {options.seconds:g} s per row after a {options.warmup_seconds:g} s"
            f" warm-up; 64 connections; medians.",
            machine,
            format_rows(report.results),
            format_servers(report.servers),
            format_targets(check_targets(report.results, report.servers)),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.action == "setup":
            install_tools()
            print("bench: wrk and autocannon are installed", file=sys.stderr)
            return 0
        options = Options(
            seconds=arguments.seconds or (2.0 if arguments.quick else 5.0),
            warmup_seconds=1.0 if arguments.quick else 2.0,
            rounds=arguments.rounds or (1 if arguments.quick else 3),
            server_cpus=arguments.server_cpus,
            load_cpus=arguments.load_cpus,
            postgres_url=arguments.postgres_url or None,
            only=re.compile(arguments.only) if arguments.only else None,
            keep_workspace=arguments.keep_workspace,
        )
        command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
        text = render(run(options, command))
    except MissingToolError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    print(text)
    if arguments.output is not None:
        arguments.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
