"""Traces and metrics (OpenTelemetry SDK): one trace per run, across all five services.

Why one module: every stage runs the same path (consume → work → outbox → publish), so the
few hooks that make a run one trace live here once — a span around each consumed message
(FastStream's Kafka middleware, which also writes the W3C `traceparent` header on every
publish), a span per stage's work and per twin operation, and the `traceparent` kept in the
outbox so an event the relay publishes later still continues its run's trace. The metrics
that describe runs (stage durations, runs by status, check results) are recorded at the
same hooks; those sampled from Docker and Kafka are in `samplers.py`.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from faststream import BaseMiddleware
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import context, metrics, trace
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util import ns_to_iso_str
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from patchtwin.observability.logs import RUN_ID
from patchtwin.settings import Settings
from schemas.request import RUN_ID_PATTERN

P = ParamSpec("P")
R = TypeVar("R")

TRACER = "patchtwin"
_PROPAGATOR = TraceContextTextMapPropagator()
_RUN_ID_RE = __import__("re").compile(RUN_ID_PATTERN)

# Span attribute names (one place, so tests and dashboards agree).
ATTR_SERVICE = "patchtwin.service"
ATTR_RUN_ID = "patchtwin.run_id"
ATTR_ASSET = "patchtwin.asset_id"
ATTR_IMAGE = "patchtwin.image"
ATTR_OUTCOME = "patchtwin.outcome"
ATTR_CODE = "patchtwin.error_code"
ATTR_TWIN = "patchtwin.twin"


# -- providers ----------------------------------------------------------------------------------


def setup(settings: Settings, service: str = "patchtwin") -> None:
    """Installs this process's tracer and meter providers, once; later calls change nothing.

    Spans are always recorded (so `traceparent` flows and logs carry trace ids); the
    `otel_exporter` setting only chooses where they go: nowhere, OTLP, the console, or a file."""
    resource = _resource(service)
    if not isinstance(trace.get_tracer_provider(), SdkTracerProvider):
        provider = SdkTracerProvider(resource=resource)
        exporter = span_exporter(settings.otel_exporter, settings.otel_file or settings.state_dir / "spans.jsonl")
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    if not isinstance(metrics.get_meter_provider(), SdkMeterProvider):
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        metrics.set_meter_provider(SdkMeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource))


def _resource(service: str) -> Resource:
    # OTEL_SERVICE_NAME (compose sets one per container) wins over the name we derive.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"patchtwin-{service}"}
    return Resource.create(attributes)


def span_exporter(kind: str, path: Path | None = None) -> SpanExporter | None:
    if kind == "none":
        return None
    if kind == "console":  # (the SDK's own formatter fails a batch on a bytes attribute: `span_line`)
        return ConsoleSpanExporter(formatter=span_line)
    if kind == "file":
        # one span per line (the SDK's JSON), for tools without a collector: `python -m bench.run` reads it
        if path is None:
            raise ValueError("the file exporter needs a path")
        path.parent.mkdir(parents=True, exist_ok=True)
        return ConsoleSpanExporter(out=path.open("a", encoding="utf-8"), formatter=span_line)
    if kind == "otlp":
        # Endpoint and protocol from the standard OTEL_EXPORTER_OTLP_* variables.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"unknown otel_exporter {kind!r}: none, otlp, console or file")


def span_line(span: ReadableSpan) -> str:
    """A span as one JSON line, in the SDK's `to_json` shape; attribute values JSON cannot hold
    (a Kafka key's bytes) as text, where `to_json` would fail the whole batch."""
    context = span.get_span_context()
    record = {
        "name": span.name,
        "context": {"trace_id": f"0x{trace.format_trace_id(context.trace_id)}" if context else None,
                    "span_id": f"0x{trace.format_span_id(context.span_id)}" if context else None},
        "kind": span.kind.name,
        "parent_id": f"0x{trace.format_span_id(span.parent.span_id)}" if span.parent else None,
        "start_time": ns_to_iso_str(span.start_time) if span.start_time else None,
        "end_time": ns_to_iso_str(span.end_time) if span.end_time else None,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "resource": dict(span.resource.attributes),
    }
    return json.dumps(record, default=_as_text) + "\n"


def _as_text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER)


# -- the bus: a span per consumed message, traceparent on every publish ---------------------------


class RunIdMiddleware(BaseMiddleware):  # type: ignore[type-arg]
    """Names the run (the message key) on the consume span and in every log line of the handler."""

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        key = getattr(msg.raw_message, "key", None)
        run_id = key.decode("utf-8", "replace") if isinstance(key, bytes) else None
        if run_id is not None and not _RUN_ID_RE.match(run_id):
            run_id = None
        token = RUN_ID.set(run_id)
        if run_id is not None:
            trace.get_current_span().set_attribute(ATTR_RUN_ID, run_id)
        try:
            return await call_next(msg)
        finally:
            RUN_ID.reset(token)


def broker_middlewares() -> tuple[Any, ...]:
    """For `KafkaBroker(middlewares=...)`: FastStream's OpenTelemetry middleware (outermost: it
    opens the consume span from the incoming `traceparent` and writes one on every publish),
    then the run id."""
    return (KafkaTelemetryMiddleware(), RunIdMiddleware)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store beside an event in the outbox."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Makes a stored traceparent the current context (a relay publishing later)."""
    if not traceparent:
        yield
        return
    token = context.attach(_PROPAGATOR.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def continues_trace(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorates `Stage._send(self, record)`: publishes in the trace stored with the record."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        record = kwargs.get("record", args[1] if len(args) > 1 else None)
        with continued(getattr(record, "traceparent", None)):
            return await fn(*args, **kwargs)

    return wrapper


# -- metrics ------------------------------------------------------------------------------------

_meter = metrics.get_meter(TRACER)
STAGE_DURATION = _meter.create_histogram(
    "patchtwin.stage.duration", unit="s", description="Time a stage spent on one run, by stage and outcome."
)
RUNS = _meter.create_counter("patchtwin.runs", description="Runs that got their verdict, by status.")
CHECK_RESULTS = _meter.create_counter(
    "patchtwin.check.results", description="Checks judged in verdicts, by family (type) and classification."
)
RELAY_ERRORS = _meter.create_counter(
    "patchtwin.relay.errors", description="Outbox relay passes that failed (database or broker away), by stage."
)
LEASE_RENEWAL_ERRORS = _meter.create_counter(
    "patchtwin.lease.renewal.errors", description="Lease renewals of a run that failed with an error, by stage."
)
TWIN_OPERATION_DURATION = _meter.create_histogram(
    "patchtwin.twin.operation.duration", unit="s", description="Docker twin operations, by operation and outcome."
)


def run_attributes(event: Any) -> dict[str, str]:
    """Run id, asset and image of any event (those it carries)."""
    attrs = {ATTR_RUN_ID: str(event.run_id)}
    ctx = getattr(event, "context", None)
    request = getattr(ctx, "request", None) or event
    asset = getattr(request, "asset", None)
    if asset is not None:
        attrs[ATTR_ASSET] = asset.id
        if asset.image:
            attrs[ATTR_IMAGE] = asset.image
    twin = getattr(ctx, "twin", None)
    if twin is not None:
        attrs[ATTR_IMAGE] = twin.image
        attrs[ATTR_TWIN] = twin.name
    if getattr(event, "asset_id", None):
        attrs[ATTR_ASSET] = event.asset_id
    return attrs


def outcome_of(event: Any) -> str:
    """`failed` for a RunFailed, the status of a verdict, else `ok`."""
    if event.topic.value == "run.failed":
        return "failed"
    status = getattr(event, "status", None)
    return str(status.value) if status is not None else "ok"


def traced_stage(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorates `Stage._attempt(self, event, ...)`: a span for the stage's work on one run (run
    id, asset, image and outcome as attributes) and the stage's metrics."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        stage, event = args[0], args[1]
        name: str = getattr(stage, "name", "stage")
        started = time.perf_counter()
        token = RUN_ID.set(event.run_id)  # type: ignore[attr-defined]
        attributes = {ATTR_SERVICE: name, **run_attributes(event)}
        try:
            with tracer().start_as_current_span(f"{name} stage", attributes=attributes) as span:
                outgoing = await fn(*args, **kwargs)
                outcome = outcome_of(outgoing)
                span.set_attributes({ATTR_OUTCOME: outcome, **run_attributes(outgoing)})
                if outcome == "failed" and hasattr(outgoing, "code"):
                    span.set_attribute(ATTR_CODE, str(outgoing.code))
                    span.set_status(Status(StatusCode.ERROR, str(outgoing.code)))
        finally:
            RUN_ID.reset(token)
        record_stage(name, outgoing, time.perf_counter() - started)
        return outgoing

    return wrapper


def record_stage(stage: str, outgoing: Any, duration_s: float) -> None:
    STAGE_DURATION.record(duration_s, {"stage": stage, "outcome": outcome_of(outgoing)})
    if outgoing.topic.value == "verdict.issued":
        RUNS.add(1, {"status": outcome_of(outgoing)})
        for check in outgoing.checks:
            CHECK_RESULTS.add(1, {"family": str(check.type), "classification": str(check.classification)})


def traced_twin_op(
    operation: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorates a DockerRuntime method: a `twin.<operation>` span (run id, image, twin, outcome)."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = signature.bind(*args, **kwargs).arguments
            attributes = _twin_attributes(arguments)
            started = time.perf_counter()
            outcome = "error"
            try:
                with tracer().start_as_current_span(f"twin.{operation}", attributes=attributes) as span:
                    result = await fn(*args, **kwargs)
                    outcome = _twin_outcome(result)
                    span.set_attribute(ATTR_OUTCOME, outcome)
                    exit_code = getattr(result, "exit_code", None)
                    if exit_code is not None:
                        span.set_attribute("patchtwin.exit_code", exit_code)
                    image = getattr(result, "image", None)
                    if image:
                        span.set_attribute(ATTR_IMAGE, image)
                    return result
            finally:
                TWIN_OPERATION_DURATION.record(
                    time.perf_counter() - started, {"operation": operation, "outcome": outcome}
                )

        return wrapper

    return decorate


def _twin_attributes(arguments: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    run_id = arguments.get("run_id") or RUN_ID.get()
    if run_id:
        attrs[ATTR_RUN_ID] = run_id
    if arguments.get("image"):
        attrs[ATTR_IMAGE] = arguments["image"]
    twin = arguments.get("twin") or arguments.get("name")
    if twin is not None:
        attrs[ATTR_TWIN] = getattr(twin, "name", twin)
        if getattr(twin, "image", None):
            attrs[ATTR_IMAGE] = twin.image
    argv = arguments.get("argv")
    if argv:
        attrs["patchtwin.command"] = command_name(argv)
    return attrs


def command_name(argv: Sequence[str]) -> str:
    """What an exec is for: the `$0` of a `bash -c PROGRAM NAME ...` (our programs are named
    after their purpose: readiness, snapshot, patchtwin-probe, ...), else the program run."""
    if len(argv) > 3 and argv[1] == "-c" and argv[0].rsplit("/", 1)[-1] in ("bash", "sh"):
        return str(argv[3])
    return str(argv[0])


def _twin_outcome(result: Any) -> str:
    if getattr(result, "timed_out", False):
        return "timed_out"
    if hasattr(result, "exit_code"):
        return "ok" if result.exit_code == 0 else "nonzero_exit"
    if result is False:
        return "absent"
    return "ok"
