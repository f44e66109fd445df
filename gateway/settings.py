"""The gateway's one settings object, read once at the edge and passed down.

Environment variables are prefixed ``GATEWAY_``; a ``.env`` file and a secrets directory
are read too. Tests build ``Settings(...)`` directly and never touch ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from gateway.tls.allow_list import check_allow_list
from gateway.tls.certificates import SPIFFE_ID
from gateway.versions import VersionEntry, check_factory, check_registry, default_registry

ENV_PREFIX = "GATEWAY_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/catalog.sqlite3"
INTERNAL_FACTORY = "services.internal:create_app"


def _check_database_url(url: str) -> str:
    try:
        make_url(url)
    except Exception as error:  # SQLAlchemy raises ArgumentError and ValueError alike here.
        raise ValueError(f"not a database URL: {error}") from None
    return url


def _check_optional_factory(factory: str | None) -> str | None:
    return None if factory is None else check_factory(factory)


def _check_spiffe_ids(identities: list[str]) -> list[str]:
    for identity in identities:
        if not SPIFFE_ID.fullmatch(identity):
            raise ValueError(f"{identity!r} is not a SPIFFE ID (spiffe://<trust domain>/<path>)")
    return identities


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        secrets_dir=None,
        extra="forbid",
        validate_default=True,
    )

    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the server binds to (0: any free one).")
    root_path: str = Field(
        default="",
        pattern=r"^(/[^/?#]+)*$",
        description="Path prefix a proxy strips before the gateway, e.g. '/api'. It belongs to the server.",
    )
    versions: Annotated[list[VersionEntry], AfterValidator(check_registry)] = Field(
        default_factory=default_registry,
        description="The version registry (JSON in GATEWAY_VERSIONS).",
    )
    enforce_sunset: bool = Field(
        default=True, description="Answer 410 Gone for a version past its sunset date."
    )
    database_url: Annotated[str, AfterValidator(_check_database_url)] = Field(
        default=DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the catalog store."
    )
    database_busy_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds a SQLite writer waits for the lock."
    )
    database_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds a catalog database call may take (connecting, statements); then 503 with Retry-After.",
    )
    database_pool_size: int = Field(
        default=5, ge=1, description="PostgreSQL connections each worker keeps open (its pool)."
    )
    database_max_overflow: int = Field(
        default=5,
        ge=0,
        description="Extra PostgreSQL connections a worker may open under load, beyond its pool.",
    )
    database_replicas: int = Field(
        default=1,
        ge=1,
        description=(
            "Gateway replicas sharing the database, a rollout's surge pod included; only for the "
            "connection budget (replicas x workers x (pool size + max overflow) + 1 <= max_connections)."
        ),
    )
    database_migrate_on_start: bool | None = Field(
        default=None,
        description=(
            "Run `gateway db upgrade` once in `gateway serve`'s arbiter, before workers fork. "
            "Default: on for SQLite, off otherwise (a deploy step, e.g. a Kubernetes init container, runs it)."
        ),
    )

    @property
    def migrates_database_on_start(self) -> bool:
        """Whether ``gateway serve`` migrates before its workers fork (see ``database_migrate_on_start``)."""
        if self.database_migrate_on_start is not None:
            return self.database_migrate_on_start
        # The embedded default must just work on a fresh machine; a shared server is
        # migrated once per deploy, not by each of its replicas' arbiters.
        return make_url(self.database_url).get_backend_name() == "sqlite"

    idempotency_key_ttl: float = Field(
        default=24 * 60 * 60.0,
        gt=0,
        description="Seconds an Idempotency-Key of POST /v2/items is remembered (a retry replays the response).",
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
    worker_class: str = Field(
        default="gateway.serving.worker.GatewayWorker",
        description="Gunicorn worker class; 'asgi' is Gunicorn 27's native worker (see the README).",
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
        description="Factory of the app mounted at /internal for other services; null: none.",
    )
    internal_allow: Annotated[dict[str, list[str]], AfterValidator(check_allow_list)] = Field(
        default_factory=dict,
        description=(
            "Who may call /internal (JSON): route patterns to SPIFFE IDs, e.g. "
            '{"GET /internal/items/export": ["spiffe://gateway.local/service/reporting"]}. Deny by default.'
        ),
    )
    trusted_proxies: Annotated[list[str], AfterValidator(_check_spiffe_ids)] = Field(
        default_factory=list,
        description=(
            "SPIFFE IDs of TLS-terminating proxies (connecting over mTLS) whose "
            "X-Forwarded-Client-Cert names the caller; from anyone else the header is removed."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=True, description="Write one JSON line per request.")

    @model_validator(mode="after")
    def _leave_time_to_drain(self) -> Self:
        if self.prestop_delay + 1 > self.graceful_timeout:
            raise ValueError(
                "GATEWAY_PRESTOP_DELAY must end at least 1 s before GATEWAY_GRACEFUL_TIMEOUT, "
                "or in-flight requests get no time to finish"
            )
        return self

    def redacted(self) -> dict[str, object]:
        """The effective settings with passwords and secrets hidden, for ``gateway config``."""
        values = self.model_dump(mode="json")
        values["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        return values


SECRETS_DIR_VARIABLE = f"{ENV_PREFIX}SECRETS_DIR"


def load_settings() -> Settings:
    """Settings from the process environment, ``.env``, and the secrets directory named by
    ``GATEWAY_SECRETS_DIR`` (e.g. ``/run/secrets``; one file per setting, named like its variable)."""
    secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE) or None
    return Settings(_secrets_dir=secrets_dir)


def describe_validation_error(error: ValidationError) -> str:
    """Name the environment variable behind each invalid value."""
    lines = []
    for problem in error.errors():
        location = problem["loc"]
        variable = f"{ENV_PREFIX}{str(location[0]).upper()}" if location else ENV_PREFIX + "*"
        detail = ".".join(str(part) for part in location[1:])
        where = f"{variable} ({detail})" if detail else variable
        lines.append(f"{where}: {problem['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)
