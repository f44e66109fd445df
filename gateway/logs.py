"""JSON logging for the gateway, Uvicorn and (later) Gunicorn: one line per event, one format.

Every line written while a request is served carries that request's id.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.request_context import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class TerminalColorFilter(logging.Filter):
    """Drop the ANSI-coloured copy of the message Uvicorn attaches to its records."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


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
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "timestamp": False,
            }
        },
        "handlers": {"default": handler},
        "loggers": {
            # The gateway writes its own access line; Uvicorn's and Gunicorn's would be a second.
            "uvicorn.access": {"level": "WARNING"},
            "gunicorn.access": {"level": "WARNING"},
            "uvicorn": {"level": level.upper()},
            # Gunicorn sets propagate=False on its error log, so it gets the handler itself.
            "gunicorn.error": {"level": level.upper(), "handlers": ["default"], "propagate": False},
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }
