"""The TLS a new worker serves: the files as they are, or what was loaded before when they
do not load (which would otherwise crash Gunicorn's arbiter)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.serving.served_tls import load_or_keep, load_served_tls
from gateway.settings import Settings
from gateway.tls.certificates import create_authority, issue_server_certificate
from gateway.tls.context import TLSConfigurationError


@pytest.fixture
def tls_settings(tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    authority = create_authority("Served TLS test CA")
    server = issue_server_certificate(authority, ["127.0.0.1"])
    (tmp_path / "server.pem").write_bytes(server.pem())
    (tmp_path / "server-key.pem").write_bytes(server.key_pem())
    return make_settings(
        tls_mode="tls", tls_certfile=tmp_path / "server.pem", tls_keyfile=tmp_path / "server-key.pem"
    )


def test_the_facts_describe_the_loaded_certificate(tls_settings: Settings) -> None:
    served = load_served_tls(tls_settings)
    assert served is not None
    assert served.facts.server_cert_pem == tls_settings.tls_certfile.read_text()
    assert served.facts.cipher_codes["TLS_AES_128_GCM_SHA256"] == 0x1301


def test_no_tls_no_context(make_settings: Callable[..., Settings]) -> None:
    assert load_or_keep(make_settings(tls_mode="off"), None) is None


def test_a_key_that_does_not_match_keeps_what_was_loaded_before(
    tls_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    before = load_served_tls(tls_settings)
    other = issue_server_certificate(create_authority("Another CA"), ["127.0.0.1"])
    tls_settings.tls_keyfile.write_bytes(other.key_pem())
    with caplog.at_level(logging.ERROR, logger="gateway.tls"):
        assert load_or_keep(tls_settings, before) is before
    assert "GATEWAY_TLS_KEYFILE" in caplog.text
    assert "serves the certificate loaded before" in caplog.text


def test_a_missing_certificate_keeps_what_was_loaded_before(tls_settings: Settings) -> None:
    before = load_served_tls(tls_settings)
    tls_settings.tls_certfile.unlink()
    assert load_or_keep(tls_settings, before) is before


def test_without_anything_loaded_before_the_failure_stands(tls_settings: Settings) -> None:
    tls_settings.tls_certfile.unlink()
    with pytest.raises(TLSConfigurationError, match="GATEWAY_TLS_CERTFILE"):
        load_or_keep(tls_settings, None)
