"""Every log line is one JSON object naming the run and the trace it belongs to."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from patchtwin.observability.logs import RUN_ID, JsonFormatter, RunContextFilter, configure


def _logger(stream: io.StringIO, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_line_inside_a_run_carries_its_run_id_and_trace_id() -> None:
    stream = io.StringIO()
    logger = _logger(stream, JsonFormatter())
    token = RUN_ID.set("scan-42")
    try:
        with TracerProvider().get_tracer("test").start_as_current_span("stage") as span:
            logger.warning("twin %s is slow", "web-01")
            expected_trace = trace.format_trace_id(span.get_span_context().trace_id)
    finally:
        RUN_ID.reset(token)

    line = json.loads(stream.getvalue())
    assert line["message"] == "twin web-01 is slow"
    assert line["level"] == "WARNING"
    assert line["run_id"] == "scan-42"
    assert line["trace_id"] == expected_trace
    assert len(line["span_id"]) == 16


def test_a_line_outside_any_run_has_null_run_and_trace() -> None:
    stream = io.StringIO()
    _logger(stream, JsonFormatter()).info("starting")
    line = json.loads(stream.getvalue())
    assert (line["run_id"], line["trace_id"]) == (None, None)


def test_exceptions_stay_inside_the_one_json_line() -> None:
    stream = io.StringIO()
    logger = _logger(stream, JsonFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    [line] = stream.getvalue().splitlines()
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_format_still_names_run_and_trace() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        handler = configure(logging.INFO, "text")
        stream = io.StringIO()
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        token = RUN_ID.set("scan-7")
        logging.getLogger("test.text").info("hello")
        RUN_ID.reset(token)
        assert "[run=scan-7 trace=None]: hello" in stream.getvalue()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
