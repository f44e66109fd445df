"""One structured line per request, written by the edge when the response is done."""

from __future__ import annotations

import logging
import time

# JSON's own string encoder (C), as json.dumps with ensure_ascii uses it.
from json.encoder import encode_basestring_ascii as _string
from typing import TYPE_CHECKING

from starlette.routing import Mount

from gateway.logs import AccessLineHandler, JsonLineFormatter
from gateway.tls.identity import CALLER_SCOPE_KEY, certificate_identity, identity_of

if TYPE_CHECKING:
    from starlette.types import Scope

    from gateway.tracing.server import ServerSpan

access_logger = logging.getLogger("gateway.access")


def route_template(scope: Scope) -> str | None:
    """The matched route's template ('/v2/items/{item_id}'), never the raw path."""
    route = scope.get("route")
    if route is None:
        return None
    # Each Mount extends root_path; what it added past the server's own root path is
    # the mount prefix of the innermost app that matched.
    mount_prefix = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    if isinstance(route, Mount):  # A mounted app without routes of its own (static files).
        return f"{mount_prefix}/{{path}}"
    return f"{mount_prefix}{getattr(route, 'path', '')}"


def log_access(
    scope: Scope,
    *,
    status: int,
    duration_ms: float,
    request_id: str,
    version: str | None,
    route: str | None,
    trace: ServerSpan | None = None,
) -> None:
    """The request's line; with its trace, the trace and span ids last, as ``RequestIdFilter``
    adds them to other lines (the span has ended, so they are given here)."""
    client = scope.get("client")
    method: str = scope["method"]
    path: str = scope["path"]
    client_text = f"{client[0]}:{client[1]}" if client else None
    caller = identity_of(scope)
    identity = caller.spiffe_id if caller is not None else None
    # Through a trusted proxy: whose connection it was (the caller is the forwarded one).
    via = _proxy_identity(scope)
    duration_ms = round(duration_ms, 3)
    handler = _line_handler()
    if handler is not None:
        # The fields in the order, and with the values, the record below would have.
        handler.write_line(
            f'{{"time": "{handler.time_text(time.time())}", "level": "INFO", "logger": "gateway.access", '
            f'"message": {_string(f"{method} {path} {status}")}, "method": {_string(method)}, '
            f'"path": {_string(path)}, "api_version": {_optional(version)}, "route": {_optional(route)}, '
            f'"status": {status:d}, "duration_ms": {duration_ms!r}, "request_id": {_string(request_id)}, '
            f'"client": {_optional(client_text)}, "identity": {_optional(identity)}, "via": {_optional(via)}'
            + (
                f', "trace_id": "{trace.trace_id}", "span_id": "{trace.span_id}"}}'
                if trace is not None
                else "}"
            )
        )
        return
    if not access_logger.isEnabledFor(logging.INFO):
        return
    # Logging configured otherwise: a record, made here rather than by ``Logger.info``,
    # which would also walk the stack for the caller's file and line the line never shows.
    record = logging.LogRecord(
        access_logger.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status), None
    )
    record.__dict__.update(
        {
            "method": method,
            "path": path,
            "api_version": version,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
            "client": client_text,
            "identity": identity,
            "via": via,
        }
    )
    if trace is not None:
        record.trace_id, record.span_id = trace.trace_id, trace.span_id
    access_logger.handle(record)


def _optional(text: str | None) -> str:
    return "null" if text is None else _string(text)


def _line_handler() -> AccessLineHandler | None:
    """The gateway's own access handler, when it alone writes the access lines at INFO, as
    ``gateway.logs.logging_config`` sets up; otherwise None, and logging does the work."""
    handlers = access_logger.handlers
    if len(handlers) != 1 or access_logger.propagate or access_logger.disabled:
        return None
    handler = handlers[0]
    if (
        type(handler) is not AccessLineHandler
        or type(handler.formatter) is not JsonLineFormatter
        or handler.level > logging.INFO
        or not access_logger.isEnabledFor(logging.INFO)
    ):
        return None
    return handler


def _proxy_identity(scope: Scope) -> str | None:
    if CALLER_SCOPE_KEY not in scope:
        return None
    proxy = certificate_identity(scope)
    return proxy.spiffe_id if proxy is not None else None
