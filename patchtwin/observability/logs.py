"""Structured logs: one JSON object per line, each carrying the run id and the trace id.

Why: an operator greps a run's whole story out of five services' logs by its run id, and
jumps from a log line to its trace (and back) by the trace id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace

#: The run being handled in this task; set where a message is consumed and where a stage works.
RUN_ID: ContextVar[str | None] = ContextVar("patchtwin_run_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [run=%(run_id)s trace=%(trace_id)s]: %(message)s"


@contextmanager
def about_run(run_id: str | None) -> Iterator[None]:
    """Names `run_id` in the log lines written inside (outside a handler, e.g. the relay)."""
    token = RUN_ID.set(run_id)
    try:
        yield
    finally:
        RUN_ID.reset(token)


class RunContextFilter(logging.Filter):
    """Puts `run_id`, `trace_id` and `span_id` on every record (None outside a run or span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = RUN_ID.get()
        span = trace.get_current_span().get_span_context()
        record.trace_id = trace.format_trace_id(span.trace_id) if span.is_valid else None
        record.span_id = trace.format_span_id(span.span_id) if span.is_valid else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int, fmt: Literal["json", "text"] = "json") -> logging.Handler:
    """Replaces the root logger's handlers with one stderr handler in the chosen format."""
    handler = logging.StreamHandler()
    handler.addFilter(RunContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
