"""The gateway's cross-cutting behaviour, fused into one pure ASGI pass.

Measured on these machines, each pure ASGI middleware costs about 6% of a bare
FastAPI app's throughput (Starlette's base-class HTTP middleware: 65%), so request id, version
lifecycle, body limit and access log share one scan of the headers and one ``send``
wrapper instead of four stacked layers. Each concern's logic lives in its own module.

The edge is the root app's outermost layer (``GatewayRoot``), and it sends version
traffic straight to the version's ``Mount``, with the scope the router would have built:
Starlette's root error layers and route regexes would cost about 8% of a version
request, and a version app has error layers of its own. Everything else goes through the
root's Starlette stack. Measured: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.routing import Mount, Route

from gateway.access_log import log_access, route_template
from gateway.body_limit import RequestBodyTooLarge, declared_too_large, limited_receive
from gateway.errors import PROBLEM_CONTENT_TYPE, problem_body
from gateway.health import LiveProbe
from gateway.request_context import REQUEST_ID_HEADER, accept_or_generate_request_id, bind_request_id
from gateway.routing import route_path_of
from gateway.tls.forwarded import FORWARDED_CLIENT_CERT_HEADER

if TYPE_CHECKING:
    from starlette.routing import Router
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from gateway.lifecycle import VersionPolicy
    from gateway.metrics import GatewayMetrics
    from gateway.tls.forwarded import ForwardedClientCertificates

logger = logging.getLogger("gateway.edge")


def _version_prefix(route_path: str) -> str:
    end = route_path.find("/", 1)
    return route_path if end == -1 else route_path[:end]


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GatewayEdge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: dict[str, VersionPolicy],
        max_body_size: int,
        access_log: bool,
        metrics: GatewayMetrics | None,
        forwarded_certificates: ForwardedClientCertificates,
        router: Router | None = None,
    ) -> None:
        self.app = app
        self.policies = policies
        # Given the root's router, the Mount of each version, found by its prefix.
        self.router = router
        self.mounts = {
            route.path: route
            for route in (router.routes if router is not None else [])
            if isinstance(route, Mount) and route.path in policies
        }
        # Plain ASGI endpoints the edge calls past the router too: the liveness probe.
        self.direct_routes = {
            route.path: route
            for route in (router.routes if router is not None else [])
            if isinstance(route, Route) and isinstance(route.endpoint, LiveProbe)
        }
        self.max_body_size = max_body_size
        self.access_log = access_log
        self.metrics = metrics
        self.forwarded_certificates = forwarded_certificates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                self.forwarded_certificates.resolve(scope, _forwarded_client_cert(scope["headers"]))
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.requests_in_flight += 1
        incoming_id = content_length = forwarded_client_cert = None
        has_body = False
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                incoming_id = value
            elif name == b"content-length":
                content_length = value
                has_body = value != b"0"
            elif name == b"transfer-encoding":
                has_body = True
            elif name == FORWARDED_CLIENT_CERT_HEADER:
                # Repeated header lines form one comma-separated list (RFC 9110 5.3).
                forwarded_client_cert = (
                    value if forwarded_client_cert is None else forwarded_client_cert + b"," + value
                )
        if forwarded_client_cert is not None or self.forwarded_certificates.active:
            # Before the app runs: an untrusted X-Forwarded-Client-Cert must never reach it.
            self.forwarded_certificates.resolve(scope, forwarded_client_cert)
        request_id = accept_or_generate_request_id(incoming_id)
        bind_request_id(request_id)
        extra_headers = [(REQUEST_ID_HEADER, request_id.encode())]

        root_path = scope.get("root_path", "")
        route_path = route_path_of(scope["path"], root_path)
        prefix = _version_prefix(route_path)
        policy = self.policies.get(prefix)
        version = policy.entry.name if policy is not None else None
        status = 500
        response_started = response_complete = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started, response_complete
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                response_complete = True
            await send(message)

        try:
            if policy is not None:
                extra_headers.extend(policy.response_headers(root_path))
                now = time.time()
                if policy.is_gone(now):
                    status = 410
                    gone = policy.gone_body(scope["path"], datetime.fromtimestamp(now, UTC))
                    await _send_json(send, 410, gone, extra_headers)
                    return
            if declared_too_large(content_length, self.max_body_size):
                status = 413
                await self._refuse_body(scope, send, extra_headers)
                return
            if has_body:
                receive = limited_receive(receive, self.max_body_size)
            mount = self.mounts.get(prefix) if policy is not None else None
            direct = self.direct_routes.get(route_path) if policy is None else None
            if direct is not None and scope["method"] in (direct.methods or ()):
                scope["route"] = direct
                scope["endpoint"] = direct.endpoint
                await direct.app(scope, receive, send_with_headers)
            elif mount is not None and len(route_path) > len(prefix):
                # "/v2/...": a Mount matches its prefix followed by a slash ("/v2" alone is
                # the root router's, which redirects it).
                self._enter_mount(scope, mount, root_path, prefix)
                await mount.handle(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        except RequestBodyTooLarge:
            # Only an app that does not render HTTPExceptions lets this one through.
            if response_started:
                raise
            status = 413
            await self._refuse_body(scope, send, extra_headers)
        except asyncio.CancelledError:
            # The server cut the request: a quick shutdown, or the graceful timeout ran out.
            logger.warning("request cut before it finished: %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # Half a response: only dropping the connection tells the client.
            # The request task ends here, answered: the client learns to retry elsewhere.
            status = 503
            body = problem_body(
                503, "The server is shutting down; retry the request.", instance=scope["path"]
            )
            headers = [*extra_headers, (b"retry-after", b"1"), (b"connection", b"close")]
            await _send_json(send, 503, _dumps(body), headers)
        except Exception:
            logger.exception(
                "unhandled error serving %s %s",
                scope["method"],
                scope["path"],
                extra={"request_id": request_id},
            )
            if response_complete:
                return  # The app already sent its 500; the traceback is logged once, here.
            if response_started:
                raise  # Let the server drop the connection: the response cannot be finished.
            status = 500
            body = problem_body(500, "The server failed to handle the request.", instance=scope["path"])
            await _send_json(send, 500, _dumps(body), extra_headers)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            if self.metrics is not None:
                self.metrics.requests_in_flight -= 1
                self.metrics.observe(version, route, scope["method"], status, seconds)
            if self.access_log:
                log_access(
                    scope,
                    status=status,
                    duration_ms=seconds * 1000,
                    request_id=request_id,
                    version=version,
                    route=route,
                )

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

    async def _refuse_body(self, scope: Scope, send: Send, extra_headers: list[tuple[bytes, bytes]]) -> None:
        detail = f"The request body is larger than {self.max_body_size} bytes."
        body = _dumps(problem_body(413, detail, instance=scope["path"]))
        # Closing the connection spares the server reading a body nobody wants.
        await _send_json(send, 413, body, [*extra_headers, (b"connection", b"close")])


def _forwarded_client_cert(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    values = [value for name, value in headers if name == FORWARDED_CLIENT_CERT_HEADER]
    return b",".join(values) if values else None


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
