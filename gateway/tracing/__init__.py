"""Distributed tracing: one server span per request, made by the edge, and its children.

Configured by the standard ``OTEL_*`` variables and off without an OTLP endpoint, when the
edge pays one check per request. The SDK and exporter are imported, and the tracer
provider started, in each worker's lifespan, after the fork (``provider.py``); the edge
opens and names the server span (``server.py``); ``gateway.client`` and ``gateway call``
propagate it (``outgoing.py``); apps trace their database statements (``statements.py``).

The provider is the gateway's own, never the global one: FastAPI 0.16x traces each mounted
app by itself as soon as a global provider exists, a second server span per request that
also records the query string.
"""
