"""``gateway certs``: the development CA, the server's certificate, and services' client certificates."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from gateway.tls.certificates import (
    DEFAULT_AUTHORITY_DAYS,
    DEFAULT_CERTIFICATE_DAYS,
    Authority,
    create_authority,
    describe,
    issue_client_certificate,
    issue_server_certificate,
    refuse_to_overwrite,
    service_identity,
    write_certificate,
    write_private_key,
)

if TYPE_CHECKING:
    from gateway.settings import Settings

LOCAL_SERVER_NAMES = ["localhost", "127.0.0.1", "::1"]
AUTHORITY_NAME = "gateway development CA"
AUTHORITY_KEY_FILENAME = "ca-key.pem"

Command = Callable[[argparse.Namespace], None]


@dataclass(frozen=True)
class _Layout:
    """Where the CA and the server's files are."""

    ca_certificate: Path
    ca_key: Path
    server_certificate: Path
    server_key: Path

    @property
    def files(self) -> list[Path]:
        return [self.ca_certificate, self.ca_key, self.server_certificate, self.server_key]


def add_certs_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gateway certs init|issue|show``."""
    certs = commands.add_parser("certs", help="the development CA and certificates for TLS and mTLS")
    actions = certs.add_subparsers(dest="certs_command", metavar="{init,issue,show}", required=True)
    init = actions.add_parser("init", help="create the CA, the server certificate and their keys")
    init.set_defaults(run=_init)
    issue = actions.add_parser("issue", help="issue a client certificate for a service, signed by the CA")
    issue.add_argument(
        "name", help="the service's name: its identity is spiffe://<trust domain>/service/NAME"
    )
    issue.set_defaults(run=_issue)
    for action, days in ((init, "server certificate"), (issue, "client certificate")):
        action.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="folder of the CA and the certificates (default: where GATEWAY_TLS_CA_FILE is, certs/)",
        )
        action.add_argument("--force", action="store_true", help="replace files that exist")
        action.add_argument(
            "--days",
            type=_days,
            default=DEFAULT_CERTIFICATE_DAYS,
            help=f"days the {days} is valid (default: {DEFAULT_CERTIFICATE_DAYS})",
        )
    show = actions.add_parser("show", help="print a certificate's names, identity, issuer and expiry")
    show.add_argument("file", type=Path, help="a PEM certificate")
    show.set_defaults(run=_show)


def _reporting_errors(command: Command) -> Command:
    # One readable line and exit 1, never a traceback, for what a user can fix.
    @functools.wraps(command)
    def run(arguments: argparse.Namespace) -> None:
        try:
            command(arguments)
        except (OSError, ValueError) as error:
            _fail(str(error))

    return run


def _fail(message: str) -> NoReturn:
    print(f"gateway certs: {message}", file=sys.stderr)
    raise SystemExit(1)


@_reporting_errors
def _init(arguments: argparse.Namespace) -> None:
    settings = _settings()
    layout = _layout(arguments.dir, settings)
    names = list(dict.fromkeys([*LOCAL_SERVER_NAMES, *settings.tls_server_names]))
    refuse_to_overwrite(layout.files, force=arguments.force)
    authority = create_authority(
        f"{AUTHORITY_NAME} ({settings.tls_trust_domain})",
        valid_days=max(DEFAULT_AUTHORITY_DAYS, arguments.days),
    )
    server = issue_server_certificate(authority, names, valid_days=arguments.days)
    password = settings.tls_key_password
    for path in layout.files:
        path.parent.mkdir(parents=True, exist_ok=True)
    write_certificate(layout.ca_certificate, authority.pem(), force=arguments.force)
    write_private_key(layout.ca_key, authority.key_pem(), force=arguments.force)
    write_certificate(layout.server_certificate, server.pem(), force=arguments.force)
    write_private_key(
        layout.server_key,
        server.key_pem(password.get_secret_value().encode() if password else None),
        force=arguments.force,
    )
    print(f"wrote {layout.ca_certificate}: the development CA; clients trust it")
    print(f"wrote {layout.ca_key}: the CA's key (mode 0600); it stays on this machine")
    print(f"wrote {layout.server_certificate}: the server certificate for {', '.join(names)}")
    encrypted = ", encrypted with GATEWAY_TLS_KEY_PASSWORD" if password else ""
    print(f"wrote {layout.server_key}: the server's key (mode 0600{encrypted})")
    variables = "".join(f"{name}={path} " for name, path in _variables_needed(layout, settings))
    print("next:")
    print(f"  {variables}GATEWAY_TLS_MODE=mtls gateway serve")
    print(f"  gateway certs issue NAME{_dir_option(arguments)}   # a client certificate for service NAME")


@_reporting_errors
def _issue(arguments: argparse.Namespace) -> None:
    settings = _settings()
    name: str = arguments.name
    identity = service_identity(name, trust_domain=settings.tls_trust_domain)
    layout = _layout(arguments.dir, settings)
    if not (layout.ca_certificate.is_file() and layout.ca_key.is_file()):
        _fail(
            f"no CA at {layout.ca_certificate} and {layout.ca_key}: run `gateway certs init"
            f"{_dir_option(arguments)}` first"
        )
    certificate_path = layout.ca_certificate.parent / f"{name}.pem"
    key_path = layout.ca_certificate.parent / f"{name}-key.pem"
    if {certificate_path, key_path} & set(layout.files):
        _fail(f"{name!r} would overwrite the CA's or the server's files; choose another name")
    refuse_to_overwrite([certificate_path, key_path], force=arguments.force)
    authority = Authority.load(layout.ca_certificate, layout.ca_key)
    client = issue_client_certificate(
        authority, name, trust_domain=settings.tls_trust_domain, valid_days=arguments.days
    )
    write_certificate(certificate_path, client.pem(), force=arguments.force)
    write_private_key(key_path, client.key_pem(), force=arguments.force)
    print(f"wrote {certificate_path}: the client certificate of {identity}")
    print(f"wrote {key_path}: its key (mode 0600)")
    print(f"identity: {identity}")
    print(
        f"try: curl --cacert {layout.ca_certificate} --cert {certificate_path} --key {key_path} "
        f"https://localhost:{settings.port}/health"
    )


@_reporting_errors
def _show(arguments: argparse.Namespace) -> None:
    path: Path = arguments.file
    if not path.is_file():
        _fail(f"{path}: no such file")
    description = describe(path)
    days_left = description["days_left"]
    expiry = f"{days_left} days left" if days_left >= 0 else f"EXPIRED {-days_left} days ago"
    lines = {
        "subject": description["subject"],
        "issuer": description["issuer"],
        "serial": f"{description['serial']:x}",
        "DNS names": ", ".join(description["dns_names"]) or "-",
        "IP addresses": ", ".join(description["ip_addresses"]) or "-",
        "URIs": ", ".join(description["uris"]) or "-",
        "identity": description["identity"] or "none (needs exactly one spiffe:// URI)",
        "CA": "yes" if description["is_ca"] else "no",
        "key usage": ", ".join(description["key_usage"]) or "-",
        "extended key usage": ", ".join(description["extended_key_usage"]) or "-",
        "valid from": description["not_before"].isoformat(),
        "expires": f"{description['not_after'].isoformat()} ({expiry})",
    }
    print(path)
    for label, value in lines.items():
        print(f"  {label + ':':<20}{value}")


def _settings() -> Settings:
    # Imported here: gateway.cli imports this module to register the commands.
    from gateway.cli import _load_settings

    return _load_settings()


def _layout(directory: Path | None, settings: Settings) -> _Layout:
    if directory is None:
        # The very paths `gateway serve` reads (certs/ by default), so it needs no other setting.
        return _Layout(
            ca_certificate=settings.tls_ca_file,
            ca_key=settings.tls_ca_file.parent / AUTHORITY_KEY_FILENAME,
            server_certificate=settings.tls_certfile,
            server_key=settings.tls_keyfile,
        )
    return _Layout(
        ca_certificate=directory / "ca.pem",
        ca_key=directory / AUTHORITY_KEY_FILENAME,
        server_certificate=directory / "server.pem",
        server_key=directory / "server-key.pem",
    )


def _variables_needed(layout: _Layout, settings: Settings) -> list[tuple[str, Path]]:
    """The settings `gateway serve` needs to find files written somewhere other than its defaults."""
    wanted = [
        ("GATEWAY_TLS_CERTFILE", layout.server_certificate, settings.tls_certfile),
        ("GATEWAY_TLS_KEYFILE", layout.server_key, settings.tls_keyfile),
        ("GATEWAY_TLS_CA_FILE", layout.ca_certificate, settings.tls_ca_file),
    ]
    return [(name, path) for name, path, configured in wanted if path != configured]


def _dir_option(arguments: argparse.Namespace) -> str:
    return f" --dir {arguments.dir}" if arguments.dir is not None else ""


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {days}")
    return days
