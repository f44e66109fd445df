"""Tracing from the standard OTEL_* variables: off without an endpoint, refused when unusable."""

from __future__ import annotations

import pytest

from gateway.tracing.configuration import TracingConfigurationError, tracing_configuration

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"OTEL_SERVICE_NAME": "gateway", "OTEL_TRACES_SAMPLER": "always_on"},
        {**ENDPOINT, "OTEL_SDK_DISABLED": "true"},
        {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": " "},
    ],
)
def test_tracing_is_off_without_an_endpoint_or_when_disabled(environment: dict[str, str]) -> None:
    assert tracing_configuration(environment) is None


@pytest.mark.parametrize(
    "environment",
    [ENDPOINT, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}],
)
def test_either_endpoint_turns_it_on_with_probes_and_scrapes_left_out(environment: dict[str, str]) -> None:
    configuration = tracing_configuration({**environment, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert configuration is not None
    assert configuration.excluded_paths is not None
    excluded = [
        path
        for path in ("/health", "/health/ready", "/metrics", "/healthy", "/v2/metrics")
        if configuration.excluded_paths.search(path)
    ]
    assert excluded == ["/health", "/health/ready", "/metrics"]


def test_the_instrumentations_exclusion_variable_replaces_the_default() -> None:
    configuration = tracing_configuration({**ENDPOINT, "OTEL_PYTHON_EXCLUDED_URLS": "^/internal, /docs$"})
    assert configuration is not None
    assert configuration.excluded_paths is not None
    assert [
        bool(configuration.excluded_paths.search(path)) for path in ("/internal/x", "/v2/docs", "/health")
    ] == [True, True, False]
    everything = tracing_configuration({**ENDPOINT, "OTEL_PYTHON_EXCLUDED_URLS": ""})
    assert everything is not None
    assert everything.excluded_paths is None


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        (
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json",
        ),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"),
        ({**ENDPOINT, "OTEL_PYTHON_EXCLUDED_URLS": "(unclosed"}, "OTEL_PYTHON_EXCLUDED_URLS"),
    ],
)
def test_what_the_gateway_cannot_honour_is_refused_naming_the_variable(
    environment: dict[str, str], named: str
) -> None:
    with pytest.raises(TracingConfigurationError, match=named.replace("/", ".")):
        tracing_configuration(environment)
