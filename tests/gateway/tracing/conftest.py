"""The gateway with tracing on, its spans kept in memory (the SDK's own test exporter)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.app import create_app
from gateway.settings import Settings
from gateway.tracing.configuration import DEFAULT_EXCLUDED_PATHS, TracingConfiguration
from gateway.tracing.server import ServerTracing
from tests.identities import presenting

DEFAULT_CONFIGURATION = TracingConfiguration(re.compile(DEFAULT_EXCLUDED_PATHS))
TracedClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


class Recorded:
    """The spans the gateway ended, as a collector would receive them."""

    def __init__(self) -> None:
        # One per provider: a provider's shutdown (the lifespan's end) stops its exporter.
        self.exporters: list[InMemorySpanExporter] = []

    def provider(self) -> TracerProvider:
        self.exporters.append(InMemorySpanExporter())
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporters[-1]))
        return provider

    def spans(self) -> list[ReadableSpan]:
        return [span for exporter in self.exporters for span in exporter.get_finished_spans()]

    def server_spans(self) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.kind is SpanKind.SERVER]


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def traced_client(make_settings: Callable[..., Settings], recorded: Recorded) -> TracedClient:
    """A client of the gateway whose spans ``recorded`` keeps; ``caller`` presents that
    service's certificate, ``configuration`` replaces the default exclusions."""

    @asynccontextmanager
    async def open_traced(
        *,
        caller: str | None = None,
        configuration: TracingConfiguration = DEFAULT_CONFIGURATION,
        **settings: object,
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**settings), tracing=ServerTracing(configuration, recorded.provider))
        async with LifespanManager(app) as manager:
            served = presenting(manager.app, caller) if caller is not None else manager.app
            transport = httpx.ASGITransport(app=served)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                yield client

    return open_traced
