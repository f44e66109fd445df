"""What a mounted app may use of the gateway: the one module an app imports.

An app is a factory named in the registry (``"services.v2:create_app"``) that takes the
gateway's settings and returns a FastAPI app. From the gateway it may use the problem
shape of errors, readiness checks, resources shared by the apps of one process, the
verified caller, and spans for its database statements (``trace_statements(engine)``). Its module may also declare ``GATEWAY_EXTENSION``, an ``AppExtension``:
work done once per deploy before the workers fork (migrations) and commands of its own
under ``gateway``. Nothing else of ``gateway`` is an app's to import; a test of the
import graph keeps it so.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.errors import PROBLEM_CONTENT_TYPE, problem_response
from gateway.health import ProbeReport, ReadinessCheck, add_readiness_check
from gateway.serving.cpus import default_worker_count
from gateway.settings import Settings
from gateway.shared import shared_resources_of
from gateway.sqlite import use_write_ahead_log
from gateway.tls.identity import CallerIdentity, ServiceIdentity, identity_of
from gateway.tracing.statements import trace_statements

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "AppExtension",
    "CallerIdentity",
    "Commands",
    "ProbeReport",
    "ReadinessCheck",
    "ServiceIdentity",
    "Settings",
    "SettingsLoader",
    "add_readiness_check",
    "default_worker_count",
    "identity_of",
    "problem_response",
    "shared_resources_of",
    "trace_statements",
    "use_write_ahead_log",
]

# How an extension's command reads the settings: flags (by setting name) over the rest; an
# invalid value ends the command with one line naming it, as for the gateway's own commands.
SettingsLoader = Callable[[dict[str, Any] | None], Settings]
Commands = argparse._SubParsersAction  # argparse names no public type for it.


@dataclass(frozen=True)
class AppExtension:
    """What an app adds to the gateway beyond its routes; several apps may share one (the
    catalog's versions do), and the gateway calls each once, by ``name``."""

    name: str
    # Once per deploy, in `gateway serve`'s arbiter before any worker forks (and before
    # `gateway dev` starts Uvicorn): migrations. Given the settings and the worker count.
    prepare: Callable[[Settings, int], None] | None = None
    # Registers commands under `gateway` (e.g. `gateway db ...`), given how to read settings.
    add_commands: Callable[[Commands[argparse.ArgumentParser], SettingsLoader], None] | None = None
