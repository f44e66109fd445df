"""The tracer provider of one process: the official SDK exporting over OTLP/HTTP, imported
only when tracing is on, started in each worker (a thread does not survive a fork)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("gateway.tracing")
# A worker's last spans get this long to reach the collector: one that does not answer
# must not hold the worker past Gunicorn's graceful timeout (the lifespan ends last).
FLUSH_TIMEOUT_SECONDS = 3.0


def start_otlp_provider() -> TracerProvider:
    """A provider whose batches go to the OTLP/HTTP endpoint the OTEL_* variables name; the
    SDK reads them (service name, resource, sampler, endpoint, headers, timeout)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # shutdown_on_exit=False: the lifespan flushes, bounded; an atexit hook would not be.
    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def shut_down(provider: TracerProvider, timeout: float = FLUSH_TIMEOUT_SECONDS) -> bool:
    """Export what is pending and stop; False when the collector took longer than ``timeout``."""
    # A daemon thread: the process may exit while an export to a dead collector still waits.
    stopping = threading.Thread(target=provider.shutdown, name="gateway-tracing-shutdown", daemon=True)
    stopping.start()
    stopping.join(timeout)
    if stopping.is_alive():
        logger.warning("spans not exported within %gs of shutting down were dropped", timeout)
        return False
    return True


async def shut_down_off_loop(provider: TracerProvider) -> None:
    await asyncio.to_thread(shut_down, provider)
