"""The gateway's one settings object, read once at the edge and passed down.

Environment variables are prefixed ``GATEWAY_``; a ``.env`` file and a secrets directory
are read too. Tests build ``Settings(...)`` directly and never touch ``os.environ``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeVar, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from gateway.tls.allow_list import check_allow_list
from gateway.tls.certificates import SPIFFE_ID
from gateway.versions import VersionEntry, check_factory, check_registry, default_registry

ENV_PREFIX = "GATEWAY_"
INTERNAL_FACTORY = "services.internal:create_app"
GATEWAY_WORKER: Final = "gateway.serving.worker.GatewayWorker"
# Gunicorn 27's native ASGI worker: plain HTTP only, see the README.
GUNICORN_ASGI_WORKER: Final = "asgi"
# What a JSON setting holds, by the origin of its type, for the message when it does not parse.
_JSON_KINDS: dict[object, str] = {list: "list", dict: "object"}


def _check_public_url(url: str | None) -> str | None:
    """An origin only: the gateway's links add the root path and their own path to it."""
    if url is None:
        return None
    parts = urlsplit(url)
    try:
        is_origin = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # A port that is not a number from 0 to 65535.
        is_origin = False
    if not is_origin:
        raise ValueError("a public URL is a scheme and a host, e.g. 'https://api.example.com'")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            "a public URL has no path, query, fragment or user: set the path in GATEWAY_ROOT_PATH"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _check_optional_factory(factory: str | None) -> str | None:
    # From the environment "none" arrives as text: `GATEWAY_INTERNAL_APP=null` (or empty) mounts none.
    if factory is None or factory.strip().lower() in ("", "null", "none"):
        return None
    return check_factory(factory)


def _check_spiffe_ids(identities: list[str]) -> list[str]:
    for identity in identities:
        if not SPIFFE_ID.fullmatch(identity):
            raise ValueError(f"{identity!r} is not a SPIFFE ID (spiffe://<trust domain>/<path>)")
    return identities


# The sources every settings class reads, the gateway's and each app's section alike.
_SOURCES = SettingsConfigDict(
    env_prefix=ENV_PREFIX,
    env_file=".env",
    env_file_encoding="utf-8",
    secrets_dir=None,
    extra="forbid",
    # The sections share .env: a key of another's is not one's own to refuse
    # (``extensions.with_app_settings`` refuses a key that none reads).
    dotenv_filtering="only_existing",
    validate_default=True,
)


class AppSettings(BaseSettings):
    """A mounted app's own settings section (``AppExtension.settings``): read by the gateway
    from its own sources (``GATEWAY_*`` variables, ``.env``, the secrets directory), once,
    beside the gateway's settings, and handed to the app's factory and extension."""

    model_config = _SOURCES

    def redacted(self) -> dict[str, object]:
        """The values for ``gateway config``; a section with secrets in plain fields hides them."""
        return self.model_dump(mode="json")


SectionT = TypeVar("SectionT", bound=AppSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        **_SOURCES,
        # JSON settings are decoded by ``_decode_json``: pydantic-settings' own decoding fails
        # with a SettingsError that names the field, not the variable, and stops validation.
        enable_decoding=False,
    )

    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the server binds to (0: any free one).")
    root_path: str = Field(
        default="",
        pattern=r"^(/[^/?#]+)*$",
        description="Path prefix a proxy strips before the gateway, e.g. '/api'. It belongs to the server.",
    )
    public_url: Annotated[str | None, AfterValidator(_check_public_url)] = Field(
        default=None,
        description=(
            "Scheme and host clients reach the gateway at, e.g. 'https://api.example.com' (no path: "
            "the root path is added): the API catalog's links are absolute on it. Default: relative links."
        ),
    )
    versions: Annotated[list[VersionEntry], AfterValidator(check_registry)] = Field(
        default_factory=default_registry,
        description="The version registry (JSON in GATEWAY_VERSIONS).",
        examples=[[{"prefix": "/v3", "factory": "services.v3:create_app"}]],
    )
    enforce_sunset: bool = Field(
        default=True, description="Answer 410 Gone for a version past its sunset date."
    )
    max_body_size: int = Field(
        default=1024 * 1024, ge=0, description="Largest request body in bytes (nginx's default: 1 MiB)."
    )
    readiness_timeout: float = Field(
        default=0.8, gt=0, le=30, description="Seconds each readiness check may take before it fails."
    )
    # Serving: Gunicorn's process group and the HTTP limits the gateway enforces itself.
    workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes; default: WEB_CONCURRENCY, else the CPUs this process may use (cgroup quota and affinity).",
    )
    worker_class: Literal["gateway.serving.worker.GatewayWorker", "asgi"] = Field(
        default=GATEWAY_WORKER,
        description="Gunicorn worker class; 'asgi' is Gunicorn 27's native worker, without TLS (see the README).",
    )
    worker_timeout: int = Field(
        default=30, gt=0, description="Seconds a silent worker lives before it is replaced."
    )
    graceful_timeout: int = Field(
        default=30, gt=0, description="Seconds in-flight requests get to finish on SIGTERM or SIGHUP."
    )
    prestop_delay: float = Field(
        default=0,
        ge=0,
        description="Seconds to keep serving, with readiness 503, after SIGTERM (Kubernetes preStop).",
    )
    keepalive: int = Field(default=5, gt=0, description="Seconds an idle keep-alive connection stays open.")
    max_requests: int = Field(
        default=0, ge=0, description="Replace a worker after this many requests (0: never)."
    )
    max_requests_jitter: int = Field(
        default=0, ge=0, description="Random extra requests, so workers do not restart together."
    )
    preload_app: bool = Field(
        default=False, description="Import the app in the arbiter before forking workers."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For/-Proto (comma-separated, or '*').",
    )
    max_request_line: int = Field(
        default=8192, ge=256, description="Longest request line in bytes; over it: 414."
    )
    max_header_count: int = Field(
        default=100, ge=1, description="Most request headers (Envoy's default); over it: 431."
    )
    max_header_bytes: int = Field(
        default=60 * 1024,
        ge=1024,
        description="Largest header block in bytes (Envoy's 60 KiB); over it: 431.",
    )
    header_timeout: float = Field(
        default=10,
        gt=0,
        description="Seconds a client may take to send its request headers; then the connection closes.",
    )
    body_timeout: float = Field(
        default=10,
        gt=0,
        description="Seconds a request body may go without a byte (while the server reads); then 408 and the connection closes.",
    )
    body_min_rate: float = Field(
        default=240,
        ge=0,
        description=(
            "Bytes a second a request body must average once GATEWAY_BODY_RATE_GRACE has passed "
            "(Kestrel's MinRequestBodyDataRate; 0: no minimum); slower: 408 and the connection closes."
        ),
    )
    body_rate_grace: float = Field(
        default=5,
        ge=0,
        description="Seconds of reading a request body before GATEWAY_BODY_MIN_RATE applies.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections per worker before new requests get 503 (health probes never).",
    )
    http: Literal["httptools", "h11"] = Field(
        default="httptools",
        description="Uvicorn's HTTP parser under the gateway's protocol: httptools (C, faster) or h11 (pure Python).",
    )
    metrics_enabled: bool = Field(
        default=True, description="Collect Prometheus metrics and serve them at /metrics."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port of its own (under Gunicorn) instead.",
    )
    # Service-to-service TLS. The default paths are the ones `gateway certs init` writes.
    tls_mode: Literal["off", "tls", "mtls", "mtls-optional"] = Field(
        default="off",
        description="off; tls (server certificate); mtls (client certificate required); mtls-optional.",
    )
    tls_certfile: Path = Field(
        default=Path("certs/server.pem"), description="The server's certificate chain (PEM)."
    )
    tls_keyfile: Path = Field(
        default=Path("certs/server-key.pem"), description="The server's private key (PEM)."
    )
    tls_key_password: SecretStr | None = Field(
        default=None, description="Password of the server's private key."
    )
    tls_ca_file: Path = Field(
        default=Path("certs/ca.pem"), description="CA(s) that sign client certificates (PEM)."
    )
    tls_crl_file: Path | None = Field(default=None, description="Revoked client certificates (PEM CRL).")
    tls_server_names: list[str] = Field(
        default_factory=list,
        description="Extra DNS names or IPs for the server certificate `gateway certs init` issues.",
        examples=[["gateway.example.com", "10.0.0.5"]],
    )
    tls_trust_domain: str = Field(
        default="gateway.local",
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
        description="SPIFFE trust domain of service identities: spiffe://<trust domain>/service/<name>.",
    )
    tls_expiry_warning_days: int = Field(
        default=14,
        ge=0,
        description="Days before the server certificate expires when /health starts to warn.",
    )
    internal_app: Annotated[str | None, AfterValidator(_check_optional_factory)] = Field(
        default=INTERNAL_FACTORY,
        description="Factory of the app mounted at /internal for other services; null (or empty): none.",
    )
    internal_allow: Annotated[dict[str, list[str]], AfterValidator(check_allow_list)] = Field(
        default_factory=dict,
        description=(
            "Who may call /internal (JSON): route patterns to SPIFFE IDs, e.g. "
            '{"GET /internal/items/export": ["spiffe://gateway.local/service/reporting"]}. Deny by default.'
        ),
        examples=[{"GET /internal/items/export": ["spiffe://gateway.local/service/reporting"]}],
    )
    trusted_proxies: Annotated[list[str], AfterValidator(_check_spiffe_ids)] = Field(
        default_factory=list,
        description=(
            "SPIFFE IDs of TLS-terminating proxies (connecting over mTLS) whose "
            "X-Forwarded-Client-Cert names the caller; from anyone else the header is removed."
        ),
        examples=[["spiffe://gateway.local/service/envoy"]],
    )
    # Version lifecycle: who calls each version, and which version a version-less path gets.
    caller_header: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]+$",
        description=(
            "Header in which an authenticating proxy names its user, e.g. X-Authenticated-User: the "
            "caller of a request with no verified identity, believed only from GATEWAY_TRUSTED_PROXIES."
        ),
    )
    usage: bool = Field(
        default=True,
        description="Count requests per version and caller (/internal/lifecycle, gateway lifecycle).",
    )
    usage_callers_per_version: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Distinct callers counted by name per version; the rest are counted as 'other'.",
    )
    version_pins: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Callers (SPIFFE ID or caller-header value) and the version a path without a version "
            "prefix and without API-Version serves them; others get the current version."
        ),
        examples=[{"spiffe://gateway.local/service/billing": "v1"}],
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=True, description="Write one JSON line per request.")
    # The mounted apps' own sections, read from the same sources and handed on with these.
    _app_settings: dict[type[AppSettings], AppSettings] = PrivateAttr(default_factory=dict)

    @field_validator("*", mode="before")
    @classmethod
    def _decode_json(cls, value: object, info: ValidationInfo) -> object:
        """A list or object setting given as text (a variable, ``.env``, a secrets file) is JSON."""
        field = cls.model_fields[str(info.field_name)]
        kind = _JSON_KINDS.get(get_origin(field.annotation))
        if kind is None or not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            example = f" such as {json.dumps(field.examples[0])}" if field.examples else ""
            raise ValueError(
                f"not valid JSON ({error.msg}: line {error.lineno} column {error.colno}); "
                f"it takes a JSON {kind}{example}"
            ) from None

    @model_validator(mode="after")
    def _keep_tls_on_the_gateway_worker(self) -> Self:
        # Gunicorn's asgi worker knows nothing of the gateway's TLS context: it would serve
        # plain HTTP where TLS was asked for.
        if self.worker_class == GUNICORN_ASGI_WORKER and self.tls_mode != "off":
            raise ValueError(
                f"GATEWAY_WORKER_CLASS=asgi serves plain HTTP only, and GATEWAY_TLS_MODE is {self.tls_mode}: "
                f"unset GATEWAY_WORKER_CLASS (the gateway's worker serves TLS) or set GATEWAY_TLS_MODE=off"
            )
        return self

    @model_validator(mode="after")
    def _pin_only_registered_versions(self) -> Self:
        names = {entry.name.lower() for entry in self.versions}
        unknown = sorted({version for version in self.version_pins.values() if version.lower() not in names})
        if unknown:
            raise ValueError(
                f"GATEWAY_VERSION_PINS names {', '.join(unknown)}, not in GATEWAY_VERSIONS "
                f"({', '.join(entry.name for entry in self.versions)})"
            )
        return self

    @model_validator(mode="after")
    def _leave_time_to_drain(self) -> Self:
        if self.prestop_delay + 1 > self.graceful_timeout:
            raise ValueError(
                "GATEWAY_PRESTOP_DELAY must end at least 1 s before GATEWAY_GRACEFUL_TIMEOUT, "
                "or in-flight requests get no time to finish"
            )
        return self

    @model_validator(mode="after")
    def _serve_metrics_beside_the_gateway(self) -> Self:
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError(
                f"GATEWAY_METRICS_PORT is the gateway's own port ({self.port}): pick another, "
                "or unset it to serve /metrics on the gateway's port"
            )
        return self

    def with_app_settings(self, *sections: AppSettings) -> Self:
        """These settings carrying the mounted apps' ``sections``, to be handed on together."""
        bundle = self.model_copy()
        bundle._app_settings = {type(section): section for section in sections}
        return bundle

    def app_settings(self, section: type[SectionT]) -> SectionT | None:
        """The app settings of class ``section`` these settings carry, if any."""
        found = self._app_settings.get(section)
        return found if isinstance(found, section) else None

    def redacted(self) -> dict[str, object]:
        """The effective settings with passwords and secrets hidden, for ``gateway config``:
        the gateway's, then each app section's (their variables share one namespace)."""
        values: dict[str, object] = self.model_dump(mode="json")
        for section in self._app_settings.values():
            values.update(section.redacted())
        return values


SECRETS_DIR_VARIABLE = f"{ENV_PREFIX}SECRETS_DIR"
ENV_FILE = ".env"


class InvalidSettingsError(ValueError):
    """Settings the gateway cannot start with; the message names each flag or variable at fault."""


def load_settings(flags: Mapping[str, Any] | None = None) -> Settings:
    """Settings from command-line ``flags`` (by field name, ``{"port": 8001}`` for ``--port
    8001``), the process environment, ``.env``, and the secrets directory named by
    ``GATEWAY_SECRETS_DIR`` (e.g. ``/run/secrets``; one file per setting, named like its
    variable), the first that sets a value winning.

    Raises ``InvalidSettingsError``, one line per problem, for whatever an operator must fix."""
    return _read(Settings, flags)


def load_app_settings(section: type[SectionT], flags: Mapping[str, Any] | None = None) -> SectionT:
    """An app's settings section, from the same sources and refused the same way."""
    return _read(section, flags)


_Read = TypeVar("_Read", bound=BaseSettings)


def _read(kind: type[_Read], flags: Mapping[str, Any] | None) -> _Read:
    flags = flags or {}
    try:
        return kind(_secrets_dir=_secrets_directory(), **flags)
    except ValidationError as error:
        raise InvalidSettingsError(describe_validation_error(error, flags)) from None
    except (
        OSError,
        UnicodeDecodeError,
    ) as error:  # Only .env is read outside pydantic-settings' own handling.
        raise InvalidSettingsError(f"{ENV_FILE} in {Path.cwd()} cannot be read: {error}") from None
    except SettingsError as error:
        raise InvalidSettingsError(f"{error}: {error.__cause__}") from None


def _secrets_directory() -> Path | None:
    # pydantic-settings only warns about a missing directory, and every secret in it would be missing.
    named = os.environ.get(SECRETS_DIR_VARIABLE)
    if not named:
        return None
    if not Path(named).is_dir():
        raise InvalidSettingsError(
            f"{SECRETS_DIR_VARIABLE}={named} is not a directory: name the directory holding one file "
            f"per setting (e.g. /run/secrets), or unset it"
        )
    return Path(named)


def describe_validation_error(error: ValidationError, flags: Mapping[str, object] | None = None) -> str:
    """One line per invalid value, naming the flag or environment variable it came from."""
    lines = []
    for problem in error.errors():
        location = problem["loc"]
        detail = ".".join(str(part) for part in location[1:])
        where = _named_source(str(location[0]), flags or {}) if location else ""
        where += f" ({detail})" if detail else ""
        message = _problem_message(problem)
        lines.append(f"{where}: {message}" if where else message)
    return "\n".join(lines)


def _named_source(field: str, flags: Mapping[str, object]) -> str:
    if field in flags:
        return f"--{field.replace('_', '-')} {flags[field]}"
    return f"{ENV_PREFIX}{field.upper()}"


def _problem_message(problem: ErrorDetails) -> str:
    # A validator's own message, without pydantic's "Value error, " in front.
    if problem["type"] == "value_error" and "error" in problem.get("ctx", {}):
        return str(problem["ctx"]["error"])
    return problem["msg"]
