"""``gateway lifecycle``: who still calls each version, from a running gateway.

It asks ``/internal/lifecycle`` as ``gateway call`` would (the service's client certificate
over mutual TLS, or plain HTTP when TLS is off), so the identity it presents must be in
``GATEWAY_INTERNAL_ALLOW`` for that route.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

from gateway.cli_call import EXIT_HTTP_ERROR, EXIT_NO_RESPONSE, client_for

LIFECYCLE_PATH = "/internal/lifecycle"


def add_lifecycle_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lifecycle = commands.add_parser(
        "lifecycle",
        help="print each version's lifecycle and who still calls it, from a running gateway",
        description=(
            f"Ask a running gateway's {LIFECYCLE_PATH} (GATEWAY_HOST, GATEWAY_PORT, or --url) for each "
            "version's status, sunset and callers, and print it."
        ),
    )
    lifecycle.add_argument(
        "--url",
        default=None,
        help=f"the gateway's base URL (default: this gateway's; {LIFECYCLE_PATH} is added)",
    )
    lifecycle.add_argument(
        "--as", dest="service", default=None, help="the service NAME whose certificate to present"
    )
    lifecycle.add_argument("--cert", type=Path, default=None, help="client certificate (PEM); with --key")
    lifecycle.add_argument("--key", type=Path, default=None, help="the client certificate's key (PEM)")
    lifecycle.add_argument(
        "--ca", type=Path, default=None, help="CA that signed the server (default: GATEWAY_TLS_CA_FILE)"
    )
    lifecycle.add_argument("--json", action="store_true", help="print the report as JSON")
    lifecycle.set_defaults(run=_lifecycle)


def _lifecycle(arguments: argparse.Namespace) -> None:
    from gateway.cli import _load_settings  # gateway.cli imports this module to register it.
    from gateway.usage.report import render_text

    settings = _load_settings()
    target = arguments.url.rstrip("/") + LIFECYCLE_PATH if arguments.url else LIFECYCLE_PATH
    url, client = client_for(target, arguments, settings)
    try:
        with client:
            response = client.get(url, headers={"Accept": "application/json"})
    except httpx.TransportError as error:
        _fail(f"GET {url}: {type(error).__name__}: {error}", EXIT_NO_RESPONSE)
    if response.is_error:
        detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
        _fail(
            f"GET {url}: {response.status_code} {response.reason_phrase}" + (f": {detail}" if detail else ""),
            EXIT_HTTP_ERROR,
        )
    report = response.json()
    print(
        json.dumps(report, indent=2) if arguments.json else render_text(report),
        end="\n" if arguments.json else "",
    )


def _fail(message: str, status: int) -> None:
    print(f"gateway lifecycle: {message}", file=sys.stderr)
    raise SystemExit(status)
