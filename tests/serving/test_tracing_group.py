"""Traces across two real ``gateway serve`` groups (2 workers each) that call each other over
mutual TLS, exported to a real OTLP/HTTP receiver that decodes them as a collector does."""

from __future__ import annotations

import json
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gateway.tracing.server import API_VERSION_ATTRIBUTE, CALLER_ATTRIBUTE
from gateway.versions import VersionEntry
from tests.conftest import catalog_versions, probe_version
from tests.identities import spiffe_id
from tests.servers import (
    GUNICORN_CLEAN_STOP,
    LOOPBACK,
    ServerProcess,
    gateway_serve_command,
    loopback_client,
    run_gateway,
    running_server,
    server_environment,
)
from tests.serving.conftest import wait_for, worker_pids
from tests.serving.pki import Pki
from tests.versions.relay import CERTIFICATES_VARIABLE, PEER_URL_VARIABLE, RELAY_SERVICE

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
COMMAND_TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4737"
COMMAND_PARENT_SPAN_ID = "10f067aa0ba902b8"
RELAY_VERSION = VersionEntry(prefix="/v4", factory="tests.versions.relay:create_app")
EXPORT_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), _ExportHandler)
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)


class _ExportHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        export = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        received = [
            ReceivedSpan(
                service=next(
                    _value(item.value) for item in resource.resource.attributes if item.key == "service.name"
                ),
                name=span.name,
                kind=span.kind,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                attributes={item.key: _value(item.value) for item in span.attributes},
            )
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self.server.lock:
            self.server.spans.extend(received)
        body = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def otlp_receiver() -> Iterator[_Receiver]:
    receiver = _Receiver()
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(5)


def _tracing(receiver: _Receiver, service: str) -> dict[str, str]:
    # Batches are due only in ten minutes: what the receiver gets was flushed by a worker's exit.
    return {
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.origin,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }


@contextmanager
def _group(
    folder: Path, pki: Pki, versions: list[VersionEntry], extra: dict[str, str]
) -> Iterator[ServerProcess]:
    environment = server_environment(folder, versions=versions, **pki.settings("mtls"))
    environment.update(extra)
    with running_server(
        gateway_serve_command(2),
        environment,
        folder,
        clean_stop=GUNICORN_CLEAN_STOP,
        tls=pki.client("prober"),
    ) as server:
        assert wait_for(lambda: len(worker_pids(server)) == 2, 15), server.output()
        yield server


def _named(origin: str) -> str:
    # The name the server's certificate is for, and the client verifies.
    return origin.replace(LOOPBACK, "localhost")


def _log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.stdout.lines() if line.startswith("{")]


def test_a_call_through_two_gateways_is_one_trace(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    pki.write(RELAY_SERVICE, pki.client_certificate(RELAY_SERVICE))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with otlp_receiver() as receiver:
        with _group(
            tmp_path / "b", pki, [*catalog_versions(), probe_version("/v3")], _tracing(receiver, "gateway-b")
        ) as peer:
            relay = {PEER_URL_VARIABLE: _named(peer.origin), CERTIFICATES_VARIABLE: str(pki.folder)}
            versions = [*catalog_versions(), probe_version("/v3"), RELAY_VERSION]
            with _group(
                tmp_path / "a", pki, versions, {**_tracing(receiver, "gateway-a"), **relay}
            ) as gateway:
                with loopback_client(gateway.origin, pki.client("caller")) as client:
                    relayed = client.get("/v4/relay/first", headers={"traceparent": TRACEPARENT})
                    for path in ("/health/live", "/health/ready", "/metrics"):
                        assert client.get(path).status_code == 200
                assert relayed.status_code == 200, relayed.text
                assert relayed.json()["peer"]["spiffe_id"] == spiffe_id(RELAY_SERVICE)
                assert receiver.received() == []  # Batched, not yet due.
                # HUP replaces the workers gracefully: each old one flushes as it exits.
                os.kill(gateway.process.pid, signal.SIGHUP)
                assert wait_for(
                    lambda: any(span.service == "gateway-a" for span in receiver.received()),
                    EXPORT_WAIT_SECONDS,
                )
                assert not any(span.service == "gateway-b" for span in receiver.received())
            called = _gateway_call(pki, peer, receiver, tmp_path)
            assert called.returncode == 0, called.stderr
        assert wait_for(
            lambda: {span.service for span in receiver.received()} >= {"gateway-b", "gateway-call"},
            EXPORT_WAIT_SECONDS,
        )
        spans = receiver.received()
    _check_the_relayed_trace(spans, gateway, peer)
    _check_the_commands_trace(spans)
    assert not [
        span for span in spans if str(span.attributes.get("url.path", "")).startswith(("/health", "/metrics"))
    ]


def _gateway_call(pki: Pki, peer: ServerProcess, receiver: _Receiver, folder: Path) -> Any:
    environment = server_environment(folder)
    environment.update(_tracing(receiver, "gateway-call"))
    environment["TRACEPARENT"] = f"00-{COMMAND_TRACE_ID}-{COMMAND_PARENT_SPAN_ID}-01"
    pem, key = pki.folder / "caller.pem", pki.folder / "caller-key.pem"
    arguments = [
        "call",
        _named(peer.origin) + "/v3/whoami",
        "--cert",
        str(pem),
        "--key",
        str(key),
        "--ca",
        str(pki.folder / "ca.pem"),
    ]
    return run_gateway(arguments, env=environment, cwd=folder)


def _check_the_relayed_trace(spans: list[ReceivedSpan], gateway: ServerProcess, peer: ServerProcess) -> None:
    trace = [span for span in spans if span.trace_id == TRACE_ID]
    servers = [span for span in trace if span.kind == Span.SPAN_KIND_SERVER]
    # One server span per gateway: neither the mount nor the FastAPI app adds another.
    assert sorted((span.service, span.name) for span in servers) == [
        ("gateway-a", "GET /v4/relay/{hop}"),
        ("gateway-b", "GET /v3/whoami"),
    ]
    (first,) = [span for span in servers if span.service == "gateway-a"]
    (outgoing,) = [span for span in trace if span.kind == Span.SPAN_KIND_CLIENT]
    (second,) = [span for span in servers if span.service == "gateway-b"]
    assert first.parent_span_id == CALLER_SPAN_ID
    assert (outgoing.service, outgoing.parent_span_id) == ("gateway-a", first.span_id)
    assert second.parent_span_id == outgoing.span_id
    assert first.attributes["http.route"] == "/v4/relay/{hop}"
    assert first.attributes[API_VERSION_ATTRIBUTE] == "v4"
    assert first.attributes[CALLER_ATTRIBUTE] == spiffe_id("caller")
    assert first.attributes["http.response.status_code"] == 200
    assert second.attributes[CALLER_ATTRIBUTE] == spiffe_id(RELAY_SERVICE)
    assert outgoing.attributes["http.response.status_code"] == 200
    # Every line a gateway wrote while serving the trace carries it, the access line too.
    ours = [line for line in _log_lines(gateway) if line.get("trace_id") == TRACE_ID]
    assert {line["logger"] for line in ours} >= {"gateway.access", "tests.relay"}
    assert {line["span_id"] for line in ours} == {first.span_id}
    theirs = [line for line in _log_lines(peer) if line.get("trace_id") == TRACE_ID]
    assert [(line["logger"], line["span_id"]) for line in theirs] == [("gateway.access", second.span_id)]


def _check_the_commands_trace(spans: list[ReceivedSpan]) -> None:
    trace = {span.service: span for span in spans if span.trace_id == COMMAND_TRACE_ID}
    assert set(trace) == {"gateway-call", "gateway-b"}
    assert trace["gateway-call"].kind == Span.SPAN_KIND_CLIENT
    assert trace["gateway-call"].parent_span_id == COMMAND_PARENT_SPAN_ID
    assert trace["gateway-b"].parent_span_id == trace["gateway-call"].span_id
    assert trace["gateway-b"].attributes[CALLER_ATTRIBUTE] == spiffe_id("caller")
