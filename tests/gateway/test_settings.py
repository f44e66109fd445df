"""The gateway's settings: JSON settings, the worker and the public URL, each mistake named
by its variable; a .env key that no setting reads is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_origin

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, describe_validation_error


@pytest.mark.parametrize(
    ("value", "kept"),
    [("https://api.example.com", "https://api.example.com"), ("http://[::1]:8443/", "http://[::1]:8443")],
)
def test_a_public_url_is_an_origin(value: str, kept: str) -> None:
    assert Settings(_env_file=None, public_url=value).public_url == kept


@pytest.mark.parametrize(
    "value",
    [
        "api.example.com",
        "ftp://api.example.com",
        "https://",
        "https://api.example.com:99999",
        "https://api.example.com/api",
        "https://api.example.com?cache=1",
        "https://user@api.example.com",
    ],
)
def test_a_public_url_with_more_than_an_origin_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, public_url=value)
    assert describe_validation_error(refused.value).startswith("GATEWAY_PUBLIC_URL:")


# Every list or object setting, found by type, so that one added later is covered too.
JSON_SETTINGS = sorted(
    name for name, field in Settings.model_fields.items() if get_origin(field.annotation) in (list, dict)
)
BROKEN_JSON = '["a" "b"]'


def _refusal(**settings: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**settings)
    return describe_validation_error(caught.value)


def test_the_json_settings_are_the_known_five() -> None:
    assert JSON_SETTINGS == [
        "internal_allow",
        "tls_server_names",
        "trusted_proxies",
        "version_pins",
        "versions",
    ]


@pytest.mark.parametrize("name", JSON_SETTINGS)
@pytest.mark.parametrize("source", ["dotenv", "secrets"])
def test_invalid_json_is_named_by_its_variable_with_an_example(
    name: str, source: str, tmp_path: Path
) -> None:
    variable = f"GATEWAY_{name.upper()}"
    if source == "dotenv":
        (tmp_path / ".env").write_text(f"{variable}='{BROKEN_JSON}'\n")
        message = _refusal(_env_file=tmp_path / ".env")
    else:
        (tmp_path / variable).write_text(BROKEN_JSON)
        message = _refusal(_env_file=None, _secrets_dir=tmp_path)
    kind = "object" if name in ("internal_allow", "version_pins") else "list"
    assert message.startswith(
        f"{variable}: not valid JSON (Expecting ',' delimiter: line 1 column 6); it takes a JSON {kind} such as "
    ), message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize("tls_mode", ["tls", "mtls", "mtls-optional"])
def test_the_asgi_worker_is_refused_with_tls_rather_than_serving_plain_http(tls_mode: str) -> None:
    message = _refusal(_env_file=None, worker_class="asgi", tls_mode=tls_mode)
    assert "GATEWAY_WORKER_CLASS=asgi" in message
    assert f"GATEWAY_TLS_MODE is {tls_mode}" in message
    assert Settings(_env_file=None, worker_class="asgi", tls_mode="off").worker_class == "asgi"


@pytest.mark.parametrize("worker_class", ["uvicorn_worker.UvicornWorker", "sync", "gthread"])
def test_only_the_supported_workers_may_be_set(worker_class: str) -> None:
    message = _refusal(_env_file=None, worker_class=worker_class)
    assert message == (
        "GATEWAY_WORKER_CLASS: Input should be 'gateway.serving.worker.GatewayWorker' or 'asgi'"
    )


def test_the_metrics_port_must_not_be_the_gateways() -> None:
    message = _refusal(_env_file=None, port=9000, metrics_port=9000)
    assert message == (
        "GATEWAY_METRICS_PORT is the gateway's own port (9000): pick another, "
        "or unset it to serve /metrics on the gateway's port"
    )
