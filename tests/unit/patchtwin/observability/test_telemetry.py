"""What the tracing hooks put on spans and carry between services (no broker, no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pydantic import ValidationError

from patchtwin.observability import telemetry
from patchtwin.settings import Settings
from schemas import Code, RunFailed, TwinRequested
from tests.contract import TWIN_REQUESTED


def test_a_stored_traceparent_continues_the_same_trace() -> None:
    with TracerProvider().get_tracer("test").start_as_current_span("stage") as span:
        stored = telemetry.current_traceparent()
    assert stored is not None
    expected = span.get_span_context()
    version, trace_id, span_id, _flags = stored.split("-")
    assert (version, trace_id, span_id) == (
        "00", trace.format_trace_id(expected.trace_id), trace.format_span_id(expected.span_id))

    with telemetry.continued(stored):
        resumed = trace.get_current_span().get_span_context()
    assert (resumed.trace_id, resumed.span_id) == (expected.trace_id, expected.span_id)
    assert not trace.get_current_span().get_span_context().is_valid  # detached again


def test_no_current_span_means_no_traceparent() -> None:
    assert telemetry.current_traceparent() is None
    with telemetry.continued(None):
        assert not trace.get_current_span().get_span_context().is_valid


def test_span_attributes_name_run_asset_and_image() -> None:
    request = TwinRequested.model_validate({**TWIN_REQUESTED, "asset": {**TWIN_REQUESTED["asset"],
                                                                          "image": "patchtwin/debian-nginx:12"}})
    attrs = telemetry.run_attributes(request)
    assert attrs[telemetry.ATTR_RUN_ID] == request.run_id
    assert attrs[telemetry.ATTR_ASSET] == "web-01"
    assert attrs[telemetry.ATTR_IMAGE] == "patchtwin/debian-nginx:12"


def test_outcome_of_a_failure_and_of_a_stage_that_went_on() -> None:
    failed = RunFailed(run_id="r-1", stage="provisioner", code=Code.IMAGE_UNAVAILABLE, message="no image")
    assert telemetry.outcome_of(failed) == "failed"
    assert telemetry.outcome_of(TwinRequested.model_validate(TWIN_REQUESTED)) == "ok"


def test_exporter_is_chosen_by_configuration() -> None:
    assert telemetry.span_exporter("none") is None
    assert type(telemetry.span_exporter("console")).__name__ == "ConsoleSpanExporter"
    assert type(telemetry.span_exporter("otlp")).__name__ == "OTLPSpanExporter"
    with pytest.raises(ValidationError):
        Settings(otel_exporter="zipkin")  # type: ignore[arg-type]


def test_the_file_exporter_writes_one_json_span_per_line(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "spans.jsonl"
    provider = TracerProvider()
    exporter = telemetry.span_exporter("file", path)
    assert exporter is not None
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    # FastStream records a Kafka key as bytes, which the SDK's own to_json cannot write
    with (tracer.start_as_current_span("twin.create", attributes={"patchtwin.run_id": "r-1"}) as parent,
          tracer.start_as_current_span("twin.ready process", attributes={"messaging.kafka.message.key": b"r-1"})):
        pass
    provider.shutdown()
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["name"] for s in spans] == ["twin.ready process", "twin.create"]
    assert spans[0]["attributes"] == {"messaging.kafka.message.key": "r-1"}
    assert spans[0]["parent_id"] == spans[1]["context"]["span_id"] == f"0x{parent.get_span_context().span_id:016x}"
    assert spans[1]["attributes"] == {"patchtwin.run_id": "r-1"}
    assert spans[1]["start_time"] <= spans[0]["start_time"] <= spans[0]["end_time"] <= spans[1]["end_time"]


@pytest.mark.parametrize(("argv", "name"), [
    (["bash", "-c", "pt_ready_main", "readiness", "svc:nginx"], "readiness"),
    (["/bin/sh", "-c", "supervise", "/opt/patchtwin/supervise.pl", "10"], "/opt/patchtwin/supervise.pl"),
    (["service", "nginx", "start"], "service"),
    (["bash", "-c", "echo"], "bash"),
])
def test_an_exec_is_named_by_its_purpose(argv: list[str], name: str) -> None:
    assert telemetry.command_name(argv) == name
