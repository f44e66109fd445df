"""Whether the gateway traces, read from the standard ``OTEL_*`` variables without the SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
SUPPORTED_PROTOCOL = "http/protobuf"
# The variable OpenTelemetry's Python instrumentations read: regular expressions, comma
# separated, searched in the request's path (here, the path after the root path).
EXCLUDED_URLS_VARIABLE = "OTEL_PYTHON_EXCLUDED_URLS"
# Probes and scrapes arrive every few seconds from machines, and would bury the traces of calls.
DEFAULT_EXCLUDED_PATHS = r"^/health(/|$)|^/metrics(/|$)"


class TracingConfigurationError(ValueError):
    """OTEL_* variables the gateway cannot honour; the message names the variable and the fix."""


@dataclass(frozen=True)
class TracingConfiguration:
    # Requests whose path this matches get no span (None: every request gets one).
    excluded_paths: re.Pattern[str] | None


def tracing_configuration(environment: Mapping[str, str]) -> TracingConfiguration | None:
    """How to trace, or None when tracing is off: no OTLP endpoint, ``OTEL_SDK_DISABLED=true``
    or ``OTEL_TRACES_EXPORTER=none``."""
    if environment.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environment.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if exporter == "none":
        return None
    if not any(environment.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        return None
    if exporter != "otlp":
        raise TracingConfigurationError(
            f"OTEL_TRACES_EXPORTER={exporter}: the gateway exports traces over OTLP only; "
            "set it to otlp (or none to turn tracing off)"
        )
    for name in PROTOCOL_VARIABLES:
        protocol = environment.get(name, "").strip()
        if protocol and protocol != SUPPORTED_PROTOCOL:
            raise TracingConfigurationError(
                f"{name}={protocol}: the gateway exports traces over {SUPPORTED_PROTOCOL} only; "
                f"set it to {SUPPORTED_PROTOCOL} and point the endpoint at the collector's OTLP/HTTP port (4318)"
            )
    excluded = environment.get(EXCLUDED_URLS_VARIABLE)
    if excluded is None:
        return TracingConfiguration(re.compile(DEFAULT_EXCLUDED_PATHS))
    return TracingConfiguration(_excluded_paths(excluded))


def _excluded_paths(patterns: str) -> re.Pattern[str] | None:
    parts = [part.strip() for part in patterns.split(",") if part.strip()]
    if not parts:
        return None
    try:
        return re.compile("|".join(f"(?:{part})" for part in parts))
    except re.error as error:
        raise TracingConfigurationError(
            f"{EXCLUDED_URLS_VARIABLE}: {error}; give regular expressions separated by commas"
        ) from None
