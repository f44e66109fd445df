from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.access_log import log_access
from gateway.logs import AccessLineHandler, JsonLineFormatter, logging_config
from gateway.request_context import bind_request_id


def _reset_logging() -> None:
    """Undo ``logging_config`` for the loggers it sets, so later tests see logging's defaults."""
    names = ("gateway.access", "gunicorn.error", "uvicorn", "uvicorn.access", "alembic.runtime.plugins")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {name: {"level": "NOTSET", "propagate": True} for name in names},
        }
    )


def _line(record: logging.LogRecord) -> dict[str, Any]:
    text = JsonLineFormatter().format(record)
    assert "\n" not in text
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _record(message: str = "served %s", *args: object, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("gateway.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(fields)
    return record


def test_a_line_has_the_fixed_fields_then_the_records_own() -> None:
    line = _line(_record("served %s", "/v2/items", status=200, route="/v2/items", client=None))
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["message"] == "served /v2/items"
    assert line["level"] == "INFO"
    assert line["logger"] == "gateway.test"
    assert (line["status"], line["route"], line["client"]) == (200, "/v2/items", None)
    assert "args" not in line
    assert "pathname" not in line
    datetime.strptime(line["time"], "%Y-%m-%d %H:%M:%S,%f")


def test_a_value_json_cannot_express_is_shown_as_text() -> None:
    moment = datetime(2026, 11, 30, tzinfo=UTC)
    assert _line(_record(when=moment))["when"] == str(moment)


def test_an_exception_is_one_field_of_one_line() -> None:
    try:
        raise RuntimeError("secret detail")
    except RuntimeError:
        record = logging.LogRecord("gateway.test", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    line = _line(record)
    assert line["exc_info"].startswith("Traceback (most recent call last):")
    assert line["exc_info"].endswith("RuntimeError: secret detail")


def test_lines_written_while_serving_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(logging_config("info"))
    try:
        bind_request_id("request-7")
        logging.getLogger("gateway.test").info("inside a request")
    finally:
        _reset_logging()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["message"], line["request_id"]) == ("inside a request", "request-7")


def test_the_time_changes_with_each_second() -> None:
    formatter = JsonLineFormatter()
    first = _record()
    later = _record()
    later.created, later.msecs = first.created + 1.0, first.msecs
    assert formatter.formatTime(first) != formatter.formatTime(later)
    assert formatter.formatTime(first)[-4:] == formatter.formatTime(later)[-4:]


def _access_lines(capsys: pytest.CaptureFixture[str], configuration: dict[str, Any]) -> list[dict[str, Any]]:
    logging.config.dictConfig(configuration)
    scope = {"type": "http", "method": "GET", "path": '/v2/items/"7"', "client": ("127.0.0.1", 5000)}
    try:
        log_access(
            scope,
            status=200,
            duration_ms=1.23456,
            request_id="r-1",
            version="v2",
            route="/v2/items/{item_id}",
        )
    finally:
        _reset_logging()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_access_line_is_the_same_whichever_way_it_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    (fast,) = _access_lines(capsys, logging_config("info"))
    # Logging configured otherwise (here: the access logger propagates to the root's
    # handler too) gets the line through a record and the formatter: the same fields.
    rerouted = logging_config("info")
    rerouted["loggers"]["gateway.access"] = {"level": "INFO", "propagate": True}
    (through_record,) = _access_lines(capsys, rerouted)
    assert fast.pop("time")
    assert through_record.pop("time")
    assert (
        fast
        == through_record
        == {
            "level": "INFO",
            "logger": "gateway.access",
            "message": 'GET /v2/items/"7" 200',
            "method": "GET",
            "path": '/v2/items/"7"',
            "api_version": "v2",
            "route": "/v2/items/{item_id}",
            "status": 200,
            "duration_ms": 1.235,
            "request_id": "r-1",
            "client": "127.0.0.1:5000",
            "identity": None,
            "via": None,
        }
    )


def test_an_access_logger_turned_down_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = logging_config("info")
    quiet["loggers"]["gateway.access"]["level"] = "WARNING"
    assert _access_lines(capsys, quiet) == []


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def _access_handler(stream: _CountingStream) -> AccessLineHandler:
    handler = AccessLineHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    return handler


def test_off_an_event_loop_each_access_line_is_flushed_as_it_is_written() -> None:
    stream = _CountingStream()
    handler = _access_handler(stream)
    handler.write_line("one")
    handler.write_line("two")
    assert (stream.getvalue(), stream.flushes) == ("one\ntwo\n", 2)


@pytest.mark.anyio
async def test_on_an_event_loop_the_lines_of_one_pass_are_flushed_together_right_after_it() -> None:
    stream = _CountingStream()
    handler = _access_handler(stream)
    for number in range(3):
        handler.write_line(f"line {number}")
    assert stream.flushes == 0
    await asyncio.sleep(0)  # The loop's next pass.
    assert (stream.getvalue().splitlines(), stream.flushes) == (["line 0", "line 1", "line 2"], 1)
    handler.write_line("line 3")
    await asyncio.sleep(0)
    assert stream.flushes == 2


class _UnbufferedStream(_CountingStream):
    """A stream that writes through, as stdout does under PYTHONUNBUFFERED: each ``write`` a syscall."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.mark.anyio
async def test_the_lines_of_one_pass_take_one_write_even_on_an_unbuffered_stream() -> None:
    stream = _UnbufferedStream()
    handler = _access_handler(stream)
    for number in range(5):
        handler.write_line(f"line {number}")
    await asyncio.sleep(0)
    assert (stream.writes, stream.flushes, len(stream.getvalue().splitlines())) == (1, 1, 5)


@pytest.mark.anyio
async def test_lines_still_pending_are_written_when_logging_flushes_its_handlers() -> None:
    # logging.shutdown, at exit, flushes every handler: no line waits for a loop pass that never comes.
    stream = _CountingStream()
    handler = _access_handler(stream)
    handler.write_line("last request")
    handler.flush()
    assert stream.getvalue() == "last request\n"
    await asyncio.sleep(0)  # The pass's own flush then finds nothing more to write.
    assert stream.getvalue() == "last request\n"
