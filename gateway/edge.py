"""The gateway's cross-cutting behaviour, fused into one pure ASGI pass.

Measured on these machines, each pure ASGI middleware costs about 6% of a bare
FastAPI app's throughput (Starlette's base-class HTTP middleware: 65%), so request id,
version choice and lifecycle, body limit, usage, metrics and access log share one scan of
the headers and one ``send`` wrapper instead of stacked layers. Each concern's logic lives
in its own module; a request passes through ``__call__``'s named steps over one
``_Exchange``, its state.

The edge is the root app's outermost layer (``GatewayRoot``), and it sends version
traffic straight to the version's ``Mount``, with the scope the router would have built:
Starlette's root error layers and route regexes would cost about 8% of a version
request, and a version app has error layers of its own. Everything else goes through the
root's Starlette stack. Measured: docs/benchmarks.md.

With tracing on, the edge also opens the request's one server span, before the app runs,
and names it by the route the app matched (``gateway.tracing.server``); with it off, that
costs a request one check.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.routing import Mount, Route

from gateway.access_log import log_access, route_template
from gateway.body_limit import RequestBodyTooLarge, declared_too_large, limited_receive
from gateway.errors import problem_bytes, send_problem
from gateway.health import LiveProbe
from gateway.request_context import REQUEST_ID_HEADER, accept_or_generate_request_id, bind_request_id
from gateway.routing import route_path_of
from gateway.tls.forwarded import FORWARDED_CLIENT_CERT_HEADER
from gateway.version_choice import API_VERSION_HEADER, UnknownVersion
from gateway.versions import RESERVED_PREFIXES

if TYPE_CHECKING:
    from starlette.routing import Router
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from gateway.lifecycle import VersionPolicy
    from gateway.metrics import GatewayMetrics
    from gateway.tls.forwarded import ForwardedClientCertificates
    from gateway.tracing.server import ServerSpan, ServerTracing
    from gateway.usage.callers import CallerAttribution
    from gateway.usage.recorder import UsageRecorder
    from gateway.version_choice import VersionChoice

logger = logging.getLogger("gateway.edge")
# An answer the edge gives itself: status, problem body, extra headers.
_Refusal = tuple[int, bytes] | tuple[int, bytes, tuple[bytes, bytes]]
# A first path segment that names a version the registry lacks, rather than a resource.
_LOOKS_LIKE_A_VERSION = re.compile(r"^/v[0-9]+(\.[0-9]+)*$", re.IGNORECASE)


def _version_prefix(route_path: str) -> str:
    end = route_path.find("/", 1)
    return route_path if end == -1 else route_path[:end]


class _Exchange:
    """One request's state as it passes the edge."""

    __slots__ = (
        "api_version",
        "caller",
        "caller_header",
        "content_length",
        "error",
        "extra_headers",
        "forwarded_client_cert",
        "has_body",
        "policy",
        "prefix",
        "request_id",
        "response_complete",
        "response_started",
        "route_path",
        "scope",
        "send",
        "started",
        "status",
        "trace",
    )

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.send = send
        self.started = time.perf_counter()
        self.status = 500
        self.response_started = self.response_complete = False
        self.request_id = ""
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.content_length: bytes | None = None
        self.forwarded_client_cert: bytes | None = None
        self.api_version: bytes | None = None
        self.caller_header: bytes | None = None
        self.has_body = False
        self.policy: VersionPolicy | None = None
        self.caller: str | None = None
        self.route_path = self.prefix = ""
        self.trace: ServerSpan | None = None
        self.error: BaseException | None = None

    async def send_with_headers(self, message: Message) -> None:
        """The app's ``send``: the edge's headers added, the status and progress noted."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_started = True
            message["headers"] = [*message.get("headers", ()), *self.extra_headers]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.response_complete = True
        await self.send(message)

    async def answer(self, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
        """Answer with a problem body, past the app."""
        self.status = status
        await send_problem(self.send, status, body, [*self.extra_headers, *headers])


class GatewayEdge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        versions: VersionChoice,
        max_body_size: int,
        access_log: bool,
        metrics: GatewayMetrics | None,
        forwarded_certificates: ForwardedClientCertificates,
        callers: CallerAttribution,
        usage: UsageRecorder | None = None,
        tracing: ServerTracing | None = None,
        router: Router | None = None,
    ) -> None:
        self.app = app
        self.versions = versions
        self.policies = versions.by_prefix
        # Given the root's router, the Mount of each version, found by its prefix.
        self.router = router
        routes = router.routes if router is not None else []
        self.mounts = {
            route.path: route for route in routes if isinstance(route, Mount) and route.path in self.policies
        }
        # Plain ASGI endpoints the edge calls past the router too: the liveness probe.
        self.direct_routes = {
            route.path: route
            for route in routes
            if isinstance(route, Route) and isinstance(route.endpoint, LiveProbe)
        }
        self.max_body_size = max_body_size
        self.access_log = access_log
        self.metrics = metrics
        self.forwarded_certificates = forwarded_certificates
        self.callers = callers
        self.usage = usage
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                self.forwarded_certificates.resolve(scope, _forwarded_client_cert(scope["headers"]))
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, send)
        if self.metrics is not None:
            self.metrics.requests_in_flight += 1
        try:
            self._read_headers(exchange)
            if self.tracing is not None:
                exchange.trace = self.tracing.begin(scope, exchange.request_id)
            # The steps that decide are plain functions: one coroutine per request, the app's.
            refusal = (
                self._choose_version(exchange)
                or self._apply_lifecycle(exchange)
                or self._check_body(exchange)
            )
            if refusal is not None:
                await exchange.answer(*refusal)
            else:
                target = self._target(exchange)
                if exchange.has_body:
                    receive = limited_receive(receive, self.max_body_size)
                await target(scope, receive, exchange.send_with_headers)
        except BaseException as error:
            await self._answer_failure(exchange, error)
        finally:
            self._account(exchange)

    def _read_headers(self, exchange: _Exchange) -> None:
        """One scan of the headers for everything the edge needs; the request id bound."""
        scope = exchange.scope
        incoming_id = None
        caller_header = self.callers.header
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                incoming_id = value
            elif name == b"content-length":
                exchange.content_length = value
                exchange.has_body = value != b"0"
            elif name == b"transfer-encoding":
                exchange.has_body = True
            elif name == API_VERSION_HEADER:
                exchange.api_version = value
            elif name == FORWARDED_CLIENT_CERT_HEADER:
                # Repeated header lines form one comma-separated list (RFC 9110 5.3).
                previous = exchange.forwarded_client_cert
                exchange.forwarded_client_cert = value if previous is None else previous + b"," + value
            elif name == caller_header:
                exchange.caller_header = value
        if exchange.forwarded_client_cert is not None or self.forwarded_certificates.active:
            # Before the app runs: an untrusted X-Forwarded-Client-Cert must never reach it.
            self.forwarded_certificates.resolve(scope, exchange.forwarded_client_cert)
        if exchange.caller_header is not None:
            # Decided before the app runs: a caller header from an untrusted peer is removed.
            self._caller(exchange)
        exchange.request_id = accept_or_generate_request_id(incoming_id)
        bind_request_id(exchange.request_id)
        exchange.extra_headers.append((REQUEST_ID_HEADER, exchange.request_id.encode()))

    def _choose_version(self, exchange: _Exchange) -> _Refusal | None:
        """Find the version that serves the request, if any; a refusal for an unknown one."""
        scope = exchange.scope
        exchange.route_path = route_path = route_path_of(scope["path"], scope.get("root_path", ""))
        exchange.prefix = prefix = _version_prefix(route_path)
        exchange.policy = self.policies.get(prefix)
        if exchange.policy is not None or prefix in RESERVED_PREFIXES or route_path == "/":
            return None
        if _LOOKS_LIKE_A_VERSION.match(prefix):
            return None  # "/v9/...": the root's 404 lists the versions there are.
        # No version in the path: the API-Version header names it, or the caller's pin, or
        # the current version serves it.
        chosen: VersionPolicy | UnknownVersion | None
        if exchange.api_version is not None:
            chosen = self.versions.for_header(exchange.api_version)
        elif self.versions.pinned_callers:
            chosen = self.versions.for_caller(self._caller(exchange))
        else:
            chosen = self.versions.default
        if isinstance(chosen, UnknownVersion):
            return 400, problem_bytes(400, chosen.detail, instance=scope["path"], versions=chosen.known)
        if chosen is not None:
            self._address_version(exchange, chosen)
        return None

    def _apply_lifecycle(self, exchange: _Exchange) -> _Refusal | None:
        """The version's headers on the response; 410 past its sunset or in a brownout."""
        policy = exchange.policy
        if policy is None:
            return None
        scope = exchange.scope
        exchange.extra_headers.extend(policy.response_headers(scope.get("root_path", "")))
        if not policy.may_refuse:
            return None
        now = time.time()
        if policy.is_gone(now):
            return 410, policy.gone_body(scope["path"], datetime.fromtimestamp(now, UTC))
        return None

    def _check_body(self, exchange: _Exchange) -> _Refusal | None:
        """413 for a declared body over the limit, before the app reads any of it."""
        if not declared_too_large(exchange.content_length, self.max_body_size):
            return None
        return self._body_refusal(exchange)

    def _target(self, exchange: _Exchange) -> ASGIApp:
        """What serves the request: the liveness probe or the version's Mount directly,
        with the scope the router would have built, or the root's own stack."""
        scope, route_path, prefix = exchange.scope, exchange.route_path, exchange.prefix
        if exchange.policy is None:
            direct = self.direct_routes.get(route_path)
            if direct is not None and scope["method"] in (direct.methods or ()):
                scope["route"] = direct
                scope["endpoint"] = direct.endpoint
                return direct.app
            return self.app
        mount = self.mounts.get(prefix)
        if mount is not None and len(route_path) > len(prefix):
            # "/v2/...": a Mount matches its prefix followed by a slash ("/v2" alone is
            # the root router's, which redirects it).
            self._enter_mount(scope, mount, scope.get("root_path", ""), prefix)
            return mount.app  # What ``Mount.handle`` calls, one coroutine fewer.
        return self.app

    def _address_version(self, exchange: _Exchange, policy: VersionPolicy) -> None:
        """Serve a version-less path as the version's own: ``/items/1`` as ``/v2/items/1``."""
        scope = exchange.scope
        root_path = scope.get("root_path", "")
        prefix = policy.entry.prefix
        scope["path"] = root_path + prefix + exchange.route_path
        raw_path = scope.get("raw_path")
        if raw_path is not None:
            encoded_root = root_path.encode()
            rest = raw_path[len(encoded_root) :] if raw_path.startswith(encoded_root) else raw_path
            scope["raw_path"] = encoded_root + prefix.encode() + rest
        exchange.route_path = prefix + exchange.route_path
        exchange.prefix = prefix
        exchange.policy = policy

    def _enter_mount(self, scope: Scope, mount: Mount, root_path: str, prefix: str) -> None:
        """The scope Starlette's ``Router`` and ``Mount.matches`` give a mounted app: the root
        router (``request.url_for`` resolves names there), the Mount as the matched route
        (the access log's template of a path the version does not know), the prefix
        appended to root_path (Starlette 1.x leaves ``path`` whole)."""
        scope.setdefault("router", self.router)
        scope["route"] = mount
        scope["path_params"] = dict(scope.get("path_params", {}))
        scope["app_root_path"] = scope.get("app_root_path", root_path)
        scope["root_path"] = root_path + prefix
        scope["endpoint"] = mount.app

    async def _answer_failure(self, exchange: _Exchange, error: BaseException) -> None:
        """What escaped the app: answered when the response has not started, else re-raised."""
        scope = exchange.scope
        exchange.error = error
        if isinstance(error, RequestBodyTooLarge):
            # Only an app that does not render HTTPExceptions lets this one through.
            if exchange.response_started:
                raise error
            await exchange.answer(*self._body_refusal(exchange))
        elif isinstance(error, asyncio.CancelledError):
            # The server cut the request: a quick shutdown, or the graceful timeout ran out.
            logger.warning("request cut before it finished: %s %s", scope["method"], scope["path"])
            if exchange.response_started:
                raise error  # Half a response: only dropping the connection tells the client.
            # The request task ends here, answered: the client learns to retry elsewhere.
            body = problem_bytes(
                503, "The server is shutting down; retry the request.", instance=scope["path"]
            )
            await exchange.answer(503, body, (b"retry-after", b"1"), (b"connection", b"close"))
        elif isinstance(error, Exception):
            logger.exception(
                "unhandled error serving %s %s",
                scope["method"],
                scope["path"],
                extra={"request_id": exchange.request_id},
            )
            if exchange.response_complete:
                return  # The app already sent its 500; the traceback is logged once, here.
            if exchange.response_started:
                raise error  # Let the server drop the connection: the response cannot be finished.
            body = problem_bytes(500, "The server failed to handle the request.", instance=scope["path"])
            await exchange.answer(500, body)
        else:
            raise error

    def _account(self, exchange: _Exchange) -> None:
        """Metrics, usage by caller and the access line, once the request is done."""
        scope = exchange.scope
        seconds = time.perf_counter() - exchange.started
        route = route_template(scope)
        policy = exchange.policy
        version = policy.name if policy is not None else None
        if self.metrics is not None:
            self.metrics.requests_in_flight -= 1
            self.metrics.observe(version, route, scope["method"], exchange.status, seconds)
        if version is not None and self.usage is not None:
            self.usage.record(version, exchange.caller or self._caller(exchange), route, exchange.status)
        trace = exchange.trace
        if trace is not None:
            trace.finish(scope, status=exchange.status, route=route, version=version, error=exchange.error)
        if self.access_log:
            log_access(
                scope,
                status=exchange.status,
                duration_ms=seconds * 1000,
                request_id=exchange.request_id,
                version=version,
                route=route,
                trace=trace,
            )

    def _caller(self, exchange: _Exchange) -> str:
        if exchange.caller is None:
            exchange.caller = self.callers.caller_of(exchange.scope, exchange.caller_header)
        return exchange.caller

    def _body_refusal(self, exchange: _Exchange) -> _Refusal:
        detail = f"The request body is larger than {self.max_body_size} bytes."
        body = problem_bytes(413, detail, instance=exchange.scope["path"])
        # Closing the connection spares the server reading a body nobody wants.
        return 413, body, (b"connection", b"close")


def _forwarded_client_cert(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    values = [value for name, value in headers if name == FORWARDED_CLIENT_CERT_HEADER]
    return b",".join(values) if values else None
