"""What a mounted app may use of the gateway: the one module an app imports.

An app is a factory named in the registry (``"services.v2:create_app"``) that returns a
FastAPI app. From the gateway it may use the problem shape of errors, readiness checks,
resources shared by the apps of one process, the verified caller, and spans for its
database statements (``trace_statements(engine)``, or ``statement_span`` around each
statement an app runs on its driver itself). Its module may also declare
``GATEWAY_EXTENSION``, an ``AppExtension``: its own settings section (an ``AppSettings``
read by the gateway beside its own and handed to the factory), work done once per deploy
before the workers fork (migrations) and commands of its own under ``gateway``. Nothing
else of ``gateway`` is an app's to import; a test of the
import graph keeps it so.
"""

from __future__ import annotations

from gateway.errors import PROBLEM_CONTENT_TYPE, problem_response
from gateway.extensions import AppExtension, Commands, SettingsLoader
from gateway.health import ProbeReport, ReadinessCheck, add_readiness_check
from gateway.serving.cpus import configured_worker_count
from gateway.settings import AppSettings
from gateway.shared import shared_resources_of
from gateway.sqlite import use_write_ahead_log
from gateway.tls.identity import CallerIdentity, ServiceIdentity, identity_of
from gateway.tracing.statements import StatementKind, statement_span, trace_statements

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "AppExtension",
    "AppSettings",
    "CallerIdentity",
    "Commands",
    "ProbeReport",
    "ReadinessCheck",
    "ServiceIdentity",
    "SettingsLoader",
    "StatementKind",
    "add_readiness_check",
    "configured_worker_count",
    "identity_of",
    "problem_response",
    "shared_resources_of",
    "statement_span",
    "trace_statements",
    "use_write_ahead_log",
]
