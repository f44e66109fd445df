"""``gateway call``: one request from the command line, as a peer service makes it (mTLS).

It uses ``gateway.client``, the library peer services use, so a successful call proves the
certificates, the CA and the allow-list are right for that service. The response body is
streamed to standard output as it arrives (an NDJSON export needs no memory here). A trace
context in ``TRACEPARENT`` is continued (``gateway.tracing.outgoing.command_span``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import httpx

from gateway.client import DEFAULT_TIMEOUT, ClientCertificate, sync_client
from gateway.tracing.configuration import TracingConfigurationError
from gateway.tracing.outgoing import command_span, record_response

if TYPE_CHECKING:
    from gateway.settings import Settings

# As curl does with --fail: a distinct exit status for an HTTP error.
EXIT_HTTP_ERROR = 22
EXIT_NO_RESPONSE = 7


def add_call_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    call = commands.add_parser(
        "call",
        help="send one request with a service's client certificate, print the response body",
        description=(
            "Send one request as a peer service would, over mutual TLS with the service's "
            "certificate. URL may be a path (/internal/items/export): it is then sent to this "
            "gateway (GATEWAY_HOST, GATEWAY_PORT; https unless GATEWAY_TLS_MODE is off)."
        ),
    )
    call.add_argument("url", help="https://host:port/path, or a path on this gateway")
    call.add_argument(
        "-X", "--request", dest="method", default=None, help="method (default: GET, or POST with -d)"
    )
    call.add_argument(
        "-d",
        "--data",
        default=None,
        help="request body; @FILE reads a file, @- standard input (JSON by default)",
    )
    call.add_argument(
        "-H", "--header", action="append", default=[], help="extra header 'Name: value' (repeatable)"
    )
    identity = call.add_mutually_exclusive_group()
    identity.add_argument(
        "--as",
        dest="service",
        default=None,
        help="the service NAME whose certificate to present: NAME.pem and NAME-key.pem beside the CA",
    )
    identity.add_argument("--cert", type=Path, default=None, help="client certificate (PEM); with --key")
    call.add_argument("--key", type=Path, default=None, help="the client certificate's key (PEM)")
    call.add_argument(
        "--ca", type=Path, default=None, help="CA that signed the server (default: GATEWAY_TLS_CA_FILE)"
    )
    call.add_argument("-i", "--include", action="store_true", help="print the status line and headers first")
    call.set_defaults(run=_call)


def _fail(message: str, status: int = 2) -> NoReturn:
    print(f"gateway call: {message}", file=sys.stderr)
    raise SystemExit(status)


def _certificate(arguments: argparse.Namespace, settings: Settings) -> ClientCertificate:
    ca_file: Path = arguments.ca or settings.tls_ca_file
    certfile: Path | None = arguments.cert
    keyfile: Path | None = arguments.key
    if arguments.service is not None:
        certfile = ca_file.parent / f"{arguments.service}.pem"
        keyfile = ca_file.parent / f"{arguments.service}-key.pem"
    if (certfile is None) != (keyfile is None) and arguments.service is None:
        _fail("--cert and --key go together")
    for path in [ca_file, *([certfile, keyfile] if certfile is not None and keyfile is not None else [])]:
        if not path.is_file():
            hint = f" (run `gateway certs issue {arguments.service}`)" if arguments.service else ""
            _fail(f"{path}: no such file{hint}")
    return ClientCertificate(ca_file, certfile, keyfile)


def _plain_client() -> httpx.Client:
    return httpx.Client(timeout=DEFAULT_TIMEOUT, trust_env=False)


def _url(target: str, settings: Settings) -> str:
    if "://" in target:
        return target
    if not target.startswith("/"):
        _fail(f"{target!r} is neither a URL nor a path")
    scheme = "http" if settings.tls_mode == "off" else "https"
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host  # noqa: S104 - a name to call, not a bind
    return f"{scheme}://{host}:{settings.port}{settings.root_path}{target}"


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as error:
            _fail(f"cannot read the body: {error}")
    return data.encode()


def _headers(lines: list[str], has_body: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, separator, value = line.partition(":")
        if not separator or not name.strip():
            _fail(f"{line!r} is not a header ('Name: value')")
        headers[name.strip()] = value.strip()
    if has_body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return headers


def _is_text(response: httpx.Response) -> bool:
    media_type: str = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type.startswith("text/") or media_type.endswith(("/json", "+json", "/x-ndjson"))


def client_for(target: str, arguments: argparse.Namespace, settings: Settings) -> tuple[str, httpx.Client]:
    """The URL of ``target`` (a URL, or a path on this gateway) and a client for it: over
    mutual TLS with the certificate the arguments name (--as, --cert, --key, --ca), or plain."""
    url = _url(target, settings)
    plain = url.startswith("http://")
    if plain and (arguments.service or arguments.cert):
        _fail(f"{url} is plain HTTP: a client certificate needs https")
    return url, _plain_client() if plain else sync_client(_certificate(arguments, settings))


def _call(arguments: argparse.Namespace) -> None:
    from gateway.cli import _load_settings  # gateway.cli imports this module to register it.

    settings = _load_settings()
    url, client = client_for(arguments.url, arguments, settings)
    body = _body(arguments.data)
    method = (arguments.method or ("POST" if body is not None else "GET")).upper()
    headers = _headers(arguments.header, body is not None)
    request = client.build_request(method, url, content=body, headers=headers)
    try:
        with client, command_span(request, os.environ) as span:
            response = _send_and_print(client, request, include=arguments.include)
            if span is not None:
                record_response(span, response.status_code)
    except httpx.TransportError as error:
        _fail(f"{method} {url}: {type(error).__name__}: {error}", EXIT_NO_RESPONSE)
    except TracingConfigurationError as error:
        _fail(str(error))
    if response.is_error:
        _fail(f"{method} {url}: {response.status_code} {response.reason_phrase}", EXIT_HTTP_ERROR)


def _send_and_print(client: httpx.Client, request: httpx.Request, *, include: bool) -> httpx.Response:
    """Send ``request`` and copy the response to standard output as it arrives."""
    output = sys.stdout.buffer
    response = client.send(request, stream=True)
    try:
        if include:
            output.write(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n".encode())
            for name, value in response.headers.multi_items():
                output.write(f"{name}: {value}\r\n".encode())
            output.write(b"\r\n")
        last_chunk = b""
        for chunk in response.iter_bytes():
            output.write(chunk)
            output.flush()
            last_chunk = chunk or last_chunk
        if _is_text(response) and last_chunk and not last_chunk.endswith(b"\n"):
            # A JSON body (a problem, say) ends without a newline: the next command's
            # output, or the shell's prompt, would run on in its line. Binary bodies are
            # written exactly as received.
            output.write(b"\n")
            output.flush()
    finally:
        response.close()
    return response
