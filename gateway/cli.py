"""The ``gateway`` command: ``config``, ``dev``, ``serve``, ``certs``, ``call``, ``contracts``,
``lifecycle``, and the commands the mounted apps' extensions add (the catalog's ``db``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from gateway.cli_call import add_call_command
from gateway.cli_certs import add_certs_commands
from gateway.cli_contracts import add_contracts_commands
from gateway.cli_lifecycle import add_lifecycle_command
from gateway.extensions import app_extensions, load_group_settings, prepare_apps, section_loader
from gateway.logs import logging_config
from gateway.serving.group_settings import GROUP_APP
from gateway.serving.listen_address import bind_problem, host_and_port
from gateway.settings import ENV_PREFIX, AppSettings, InvalidSettingsError, Settings, load_settings
from gateway.tls.context import TLSConfigurationError, server_context
from gateway.tracing.configuration import TracingConfigurationError, tracing_configuration

if TYPE_CHECKING:
    from gateway.extensions import AppExtension, SettingsLoader

Section = TypeVar("Section", bound=AppSettings)
GUNICORN_CONFIG_MODULE = "gateway.serving.gunicorn_conf"
SOURCE_FOLDERS = [
    str(Path(__file__).resolve().parent),
    str(Path(__file__).resolve().parent.parent / "services"),
]


def _load_settings(flags: dict[str, Any] | None = None, *, with_apps: bool = False) -> Settings:
    """The settings, with the command's flags over them (``with_apps``: carrying the mounted
    apps' sections); an operator's mistake is one line per problem, naming the flag or
    variable, and exit status 2."""
    try:
        return load_group_settings(flags) if with_apps else load_settings(flags)
    except InvalidSettingsError as error:
        _refuse(str(error))


def _section_loader(extension: AppExtension[Section]) -> SettingsLoader[Section]:
    load = section_loader(extension)

    def load_or_refuse(flags: dict[str, Any] | None = None) -> Section:
        try:
            return load(flags)
        except InvalidSettingsError as error:
            _refuse(str(error))

    return load_or_refuse


def _refuse(message: str) -> NoReturn:
    for line in message.splitlines():
        print(f"gateway: {line}", file=sys.stderr)
    raise SystemExit(2)


def _flags(arguments: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The settings given on the command line (``--port 8001`` is ``port``)."""
    given = {name: getattr(arguments, name) for name in names}
    return {name: value for name, value in given.items() if value is not None}


def _check_listening_addresses(settings: Settings) -> None:
    # systemd's socket activation hands Gunicorn a bound socket: the address is taken by design.
    if "LISTEN_FDS" in os.environ:
        return
    problem = bind_problem(
        settings.host, settings.port, port_names=f"--port or {ENV_PREFIX}PORT (0: any free port)"
    )
    if problem is None and settings.metrics_enabled and settings.metrics_port is not None:
        problem = bind_problem(settings.host, settings.metrics_port, port_names=f"{ENV_PREFIX}METRICS_PORT")
    if problem is not None:
        _refuse(problem)


def _print_where(settings: Settings) -> None:
    if settings.port == 0:
        print("gateway: the port is chosen at start-up; see the 'Listening at' line below", file=sys.stderr)
        return
    scheme = "http" if settings.tls_mode == "off" else "https"
    base = f"{scheme}://{host_and_port(settings.host, settings.port)}{settings.root_path}"
    print(f"gateway: versions at {base}/ , docs at {base}/docs , health at {base}/health", file=sys.stderr)


def _run_uvicorn(arguments: argparse.Namespace) -> None:
    import uvicorn

    settings = _load_settings(_flags(arguments, "host", "port"), with_apps=True)
    _check_tls_and_tracing(settings)
    _check_listening_addresses(settings)
    # Once, here, not in the reloaded worker: the embedded SQLite is migrated (by default)
    # before Uvicorn starts, as `gateway serve`'s arbiter does.
    prepare_apps(settings, workers=1)
    _print_where(settings)
    uvicorn.run(
        "gateway.serving.protocols:create_dev_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        root_path=settings.root_path,
        reload=True,
        reload_dirs=SOURCE_FOLDERS,
        log_config=logging_config(settings.log_level),
        access_log=False,  # The gateway writes its own structured access line.
        **_protocol_options(settings),
    )


def _protocol_options(settings: Settings) -> dict[str, Any]:
    """The protocols and TLS context of ``gateway serve`` (limits, the ASGI TLS extension,
    the CRL), named by import string: Uvicorn's reloader hands its options to a new process."""
    options: dict[str, Any] = {
        "http": "gateway.serving.protocols:http_protocol",
        "ws": "gateway.serving.protocols:websocket_protocol",
    }
    if settings.tls_mode != "off":
        from gateway.serving.protocols import dev_ssl_context

        options["ssl_context_factory"] = dev_ssl_context
    return options


def _check_tls_and_tracing(settings: Settings) -> None:
    try:
        server_context(settings)
        tracing_configuration(os.environ)
    except (TLSConfigurationError, TracingConfigurationError) as error:
        _refuse(str(error))


def _run_gunicorn(arguments: argparse.Namespace) -> None:
    flags = _flags(arguments, "host", "port", "workers")
    settings = _load_settings(flags, with_apps=True)
    _check_tls_and_tracing(settings)
    _check_listening_addresses(settings)
    _print_where(settings)
    command = [sys.executable, "-m", "gunicorn", "--config", f"python:{GUNICORN_CONFIG_MODULE}"]
    # The flags reach Gunicorn's configuration and the workers as the variables they stand
    # for: every process reads the settings this command validated.
    environment = os.environ | {f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in flags.items()}
    # exec, not a child: signals from the terminal, systemd or Kubernetes reach the arbiter itself.
    os.execve(sys.executable, [*command, GROUP_APP], environment)  # noqa: S606 - a fixed command, no shell


def _config(arguments: argparse.Namespace) -> None:
    print(json.dumps(_load_settings(with_apps=True).redacted(), indent=2))


def _parser(extensions: list[AppExtension[Any]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="A gateway for versioned FastAPI apps.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("config", help="print the effective settings, secrets redacted").set_defaults(
        run=_config
    )
    add_certs_commands(commands)
    add_contracts_commands(commands)
    add_lifecycle_command(commands)
    add_call_command(commands)
    for extension in extensions:
        if extension.add_commands is not None:
            extension.add_commands(commands, _section_loader(extension))
    dev = commands.add_parser("dev", help="run Uvicorn with reload, watching only the source folders")
    dev.set_defaults(run=_run_uvicorn)
    serve = commands.add_parser(
        "serve", help="run the production process group: Gunicorn with the gateway's workers"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: GATEWAY_WORKERS, WEB_CONCURRENCY, or the usable CPUs)",
    )
    serve.set_defaults(run=_run_gunicorn)
    for command in (dev, serve):
        command.add_argument("--host", default=None, help="bind address (default: GATEWAY_HOST)")
        command.add_argument("--port", type=int, default=None, help="bind port (default: GATEWAY_PORT)")
    return parser


_OWN_COMMANDS = frozenset({"config", "certs", "contracts", "lifecycle", "call", "dev", "serve"})


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # The apps' commands come from their modules, named by the settings' registry: found
    # only when the command is not the gateway's own (importing the apps takes a moment).
    wanted = next((argument for argument in argv if not argument.startswith("-")), None)
    extensions = [] if wanted in _OWN_COMMANDS else app_extensions(_load_settings())
    arguments = _parser(extensions).parse_args(argv)
    try:
        arguments.run(arguments)
    except BrokenPipeError:
        # The reader left early (`gateway contracts check | head`): stop quietly, as Unix tools
        # do; output still buffered goes nowhere instead of raising again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
