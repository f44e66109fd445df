"""A collector that accepts OTLP/HTTP exports and discards them: the far end of the tracing rows.

``python -m bench.otlp_sink PORT``. The answer is an empty ``ExportTraceServiceResponse``,
which encodes as no bytes at all.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


class _Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Keep-alive: the exporter's session reuses its connection.

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer((LOOPBACK, int(sys.argv[1])), _Discard)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
