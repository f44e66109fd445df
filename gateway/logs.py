"""JSON logging for the gateway, Uvicorn and Gunicorn: one line per event, one format.

Every line written while a request is served carries that request's id, and with tracing
on its trace and span ids (``trace_id``, ``span_id``: the request's server span). Each line is
``{"time", "level", "logger", "message", ...}`` followed by the record's own fields (the
access line's ``method``, ``status``...), then ``exc_info`` or ``stack_info`` if any.

The formatter is the gateway's own: the access line is written for every request, and
python-json-logger, which this replaced, spent 124 k instructions formatting it against
about 30 k here (counted with valgrind; see docs/benchmarks.md), a tenth of the whole
request. The output is the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, TextIO

from gateway.request_context import current_request_id
from gateway.tracing.context import current_trace

# What every LogRecord has; anything else on a record is a field of the line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        """logging's default "2026-11-30 16:26:20,799", with the strftime part made once a second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._second_text},{int((created - second) * 1000):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in line:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a field the caller passed that JSON cannot express is shown, not lost.
        return json.dumps(line, default=str)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        trace = current_trace()
        if trace is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = trace.trace_id, trace.span_id
        return True


class TerminalColorFilter(logging.Filter):
    """Drop the ANSI-coloured copy of the message Uvicorn attaches to its records."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


class AccessLineHandler(logging.StreamHandler):  # type: ignore[type-arg]  # a TextIO stream
    """The access logger's handler. ``gateway.access_log`` hands it lines it wrote itself
    (``write_line``), skipping the record, filters and formatter that cost more than the
    rest of the gateway's work on a request; any other record is handled as usual.

    On an event loop, the lines of the requests that finish in one pass of the loop are
    written together, by one ``write`` and one flush, right after it: a line is never held
    longer. Measured here, a write and a flush per line cost a hello route 18% of its
    throughput, and with ``PYTHONUNBUFFERED`` (as in the Docker image) the stream's own
    buffer does not gather them. Within that pass, a line of another logger may come out
    before an access line; each has its time. Off a loop, each line is written at once.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def time_text(self, created: float) -> str:
        """The time as the handler's formatter writes it (``JsonLineFormatter``)."""
        assert isinstance(self.formatter, JsonLineFormatter)  # Checked before lines are written.
        return self.formatter.time_text(created)

    def write_line(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) > 1:
            return  # Already due to be written.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the pending lines and flush the stream (also what ``logging.shutdown`` calls)."""
        with self.lock:  # type: ignore[union-attr]  # StreamHandler always has one
            lines, self._pending = self._pending, []
            try:
                if lines:
                    self.stream.write(self.terminator.join(lines) + self.terminator)
                super().flush()
            except Exception:  # As ``emit`` does: a failing stream must not fail a request.
                self.handleError(logging.makeLogRecord({"msg": f"writing {len(lines)} access lines"}))


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping, usable as Uvicorn's ``log_config`` too."""
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": "json",
        "filters": ["request_id", "terminal_color"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "gateway.logs.RequestIdFilter"},
            "terminal_color": {"()": "gateway.logs.TerminalColorFilter"},
        },
        "formatters": {"json": {"()": "gateway.logs.JsonLineFormatter"}},
        "handlers": {"default": handler, "access": {**handler, "class": "gateway.logs.AccessLineHandler"}},
        "loggers": {
            # The gateway writes its own access line; Uvicorn's and Gunicorn's would be a second.
            "uvicorn.access": {"level": "WARNING"},
            "gateway.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            "gunicorn.access": {"level": "WARNING"},
            # Alembic announces each of its plugins at INFO; its migration steps stay visible.
            "alembic.runtime.plugins": {"level": "WARNING"},
            "uvicorn": {"level": level.upper()},
            # Gunicorn sets propagate=False on its error log, so it gets the handler itself.
            "gunicorn.error": {"level": level.upper(), "handlers": ["default"], "propagate": False},
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }
