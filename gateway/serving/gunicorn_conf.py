"""Gunicorn settings for the gateway, driven by the same Settings as the app.

One source of truth: every value below comes from ``GATEWAY_*`` settings (environment,
``.env``, secrets directory), so the app, the server and the manifests agree. The
top-level ``gunicorn.conf.py`` is this module; ``gateway serve`` loads it by name so
that it works from an installed wheel too.
"""

import os
import sys
import tempfile

from gateway.logs import logging_config
from gateway.serving.cpus import configured_worker_count
from gateway.serving.group_settings import settings_for_configuration
from gateway.serving.listen_address import host_and_port
from gateway.settings import InvalidSettingsError
from gateway.tls.context import TLSConfigurationError, server_context
from gateway.tracing.configuration import TracingConfigurationError, tracing_configuration

try:
    # Read once, here, and handed to every worker; a SIGHUP's read (the reload guard's)
    # replaces them: see group_settings.
    _settings = settings_for_configuration()
    # Checked in the arbiter before any worker forks: a TLS set-up failure stops the start
    # with one line naming the setting, rather than a worker boot loop (or plain HTTP).
    server_context(_settings)
    # The workers start tracing (after the fork); the arbiter only checks the OTEL_* variables.
    tracing_configuration(os.environ)
except (InvalidSettingsError, TLSConfigurationError, TracingConfigurationError) as _error:
    # `gateway serve` checked these already; this is `gunicorn -c gunicorn.conf.py` run by hand.
    for _line in str(_error).splitlines():
        print(f"gateway: {_line}", file=sys.stderr)
    sys.exit(2)

# Where to listen.
bind = [host_and_port(_settings.host, _settings.port)]
# Worker processes: GATEWAY_WORKERS, else WEB_CONCURRENCY, else one per usable CPU
# (the cgroup quota and affinity mask, not the host's core count).
workers = configured_worker_count(_settings)
# The gateway's own Uvicorn worker (graceful timeout, limits, drain, quick exit).
worker_class = _settings.worker_class
# A worker silent this long is killed and replaced.
timeout = _settings.worker_timeout
# Seconds from SIGTERM (or HUP) until Gunicorn kills what still runs.
graceful_timeout = _settings.graceful_timeout
# Idle seconds a keep-alive connection stays open.
keepalive = _settings.keepalive
# Recycle workers after this many requests (0: never), with jitter so they do not restart together.
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
# Import the app once in the arbiter before forking (see the README for the measurement).
preload_app = _settings.preload_app
# Heartbeat files in memory, not on a possibly slow or read-only disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs by design
# Proxies whose X-Forwarded-For/-Proto are believed.
forwarded_allow_ips = _settings.forwarded_allow_ips
# The prefix a proxy strips, for Gunicorn's asgi worker (the gateway's worker reads the settings).
root_path = _settings.root_path
# One JSON log format for Gunicorn, Uvicorn and the gateway.
logconfig_dict = logging_config(_settings.log_level)
# Metrics from every worker land in one directory and are summed at /metrics.
# (Made once, should this file be read again: a configuration given as a file path is.)
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-", dir=worker_tmp_dir)


# Gunicorn 27's control socket: unused here, and a second Gunicorn on the machine would
# fight over its one default path.
control_socket_disable = True


def on_starting(server: object) -> None:
    """Each mounted app's once-per-deploy step, before any worker forks (workers never run
    DDL): the catalog migrates when GATEWAY_DATABASE_MIGRATE_ON_START says so (default: SQLite
    only), then warns about a schema behind the code or a connection budget over the limit."""
    from gateway.extensions import prepare_apps

    prepare_apps(_settings, getattr(server, "num_workers", None) or workers)


def when_ready(server: object) -> None:
    """SIGHUP is refused, logged, while the settings or TLS files would not load (a HUP
    would otherwise take the group down); with GATEWAY_METRICS_PORT, the arbiter serves
    every worker's metrics on a port of its own."""
    from gateway.serving.reload_guard import guard_reloads

    guard_reloads(server)
    if _settings.metrics_enabled and _settings.metrics_port is not None:
        from prometheus_client import start_http_server

        from gateway.metrics import multiprocess_registry

        registry = multiprocess_registry()
        if _settings.usage:
            # Usage by caller lives in the workers' shared store, not in the metrics files.
            from gateway.usage.recorder import UsageCollector
            from gateway.usage.store import UsageStore, usage_location

            location = usage_location(os.environ["PROMETHEUS_MULTIPROC_DIR"])
            registry.register(UsageCollector(None, UsageStore(location, _settings.usage_callers_per_version)))
        start_http_server(_settings.metrics_port, addr=_settings.host, registry=registry)


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    # prometheus_client ships this one function without annotations.
    multiprocess.mark_process_dead(getattr(worker, "pid", 0))  # type: ignore[no-untyped-call]
