"""What each layer of the gateway costs, measured side by side in one run on one machine.

``python -m bench`` starts real servers on 127.0.0.1 (the gateway, the v2 app alone, a
raw ASGI floor, a naive gateway and the other servers the gateway can run under), pins
them to one core and a real HTTP load generator to another, measures every row several
times interleaved with the others, and prints one table. ``python -m bench setup``
installs the load generators. See docs/benchmarks.md.
"""
