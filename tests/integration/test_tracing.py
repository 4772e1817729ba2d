"""One run, one trace: the spans of all five services share one trace id, linked parent to
child through the `traceparent` header each event carries on Kafka."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from patchtwin.cli.app import SERVICES, App
from patchtwin.observability.telemetry import ATTR_IMAGE, ATTR_OUTCOME, ATTR_RUN_ID, ATTR_SERVICE
from patchtwin.settings import Settings
from schemas import TwinReleased
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic
from tests.observed import spans, wait_for_spans

__all__ = ["spans"]


def _of_run(finished: Sequence[ReadableSpan], run_id: str) -> list[ReadableSpan]:
    return [s for s in finished if (s.attributes or {}).get(ATTR_RUN_ID) == run_id]


def _stage_spans(finished: Sequence[ReadableSpan], run_id: str) -> dict[str, ReadableSpan]:
    return {str(s.attributes[ATTR_SERVICE]): s for s in _of_run(finished, run_id)
            if s.attributes and ATTR_SERVICE in s.attributes}


def _chain(finished: Sequence[ReadableSpan], run_id: str) -> tuple[list[int], ReadableSpan | None]:
    """The span ids above the janitor's stage span, walking up its trace, and the span the walk
    ended on: the root (no parent) when the chain is whole, else None."""
    stages = _stage_spans(finished, run_id)
    if "janitor" not in stages:
        return [], None
    span: ReadableSpan | None = stages["janitor"]
    assert span is not None
    in_trace = {s.context.span_id: s for s in finished if s.context.trace_id == span.context.trace_id}
    ancestors: list[int] = []
    while span is not None and span.parent is not None:
        ancestors.append(span.parent.span_id)
        span = in_trace.get(span.parent.span_id)
    return ancestors, span


async def test_one_run_is_one_trace_across_the_five_services(
    pipeline: App, settings: Settings, spans: InMemorySpanExporter
) -> None:
    run_id = new_run_id("trace")
    await publish(settings, "twin.requested", nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}]))
    await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=120)

    # The janitor's own consumer span ends a moment after its stage span (after the commit):
    # wait for the whole chain up to the run's root span, not only for the five stage spans.
    finished = await wait_for_spans(
        spans, lambda f: len(_stage_spans(f, run_id)) == len(SERVICES) and _chain(f, run_id)[1] is not None)

    stages = _stage_spans(finished, run_id)
    assert set(stages) == set(SERVICES)
    trace_ids = {s.context.trace_id for s in _of_run(finished, run_id)}
    assert len(trace_ids) == 1, f"{len(trace_ids)} traces for one run"
    # Parent to child across services: walking up from the janitor's span passes through the
    # span under which every earlier service did its work, in pipeline order.
    ancestors, span = _chain(finished, run_id)
    positions = [ancestors.index(stages[name].parent.span_id)  # type: ignore[union-attr]
                 for name in ("analyzer", "prober", "executor", "provisioner")]
    assert positions == sorted(positions)
    assert span is not None and span.parent is None, "the chain reaches the run's root span"


async def test_stage_and_twin_spans_name_run_image_and_outcome(
    pipeline: App, settings: Settings, spans: InMemorySpanExporter
) -> None:
    run_id = new_run_id("twinspans")
    await publish(settings, "twin.requested", nginx_request(run_id, "exit 3", checks=[]))
    await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=120)

    finished = await wait_for_spans(spans, lambda f: len(_stage_spans(f, run_id)) == len(SERVICES))

    stages = _stage_spans(finished, run_id)
    assert stages["provisioner"].attributes[ATTR_IMAGE] == "patchtwin/debian-nginx:12"  # type: ignore[index]
    assert stages["executor"].attributes[ATTR_OUTCOME] == "ok"  # type: ignore[index]
    assert stages["analyzer"].attributes[ATTR_OUTCOME] == "failed"  # type: ignore[index]
    twin_ops = [s for s in _of_run(finished, run_id) if s.name.startswith("twin.")]
    names = {s.name for s in twin_ops}
    assert {"twin.create", "twin.exec", "twin.destroy"} <= names
    # every exec (service start, the patch's supervisor, ...) says how it ended
    execs = [s.attributes or {} for s in twin_ops if s.name == "twin.exec"]
    assert len(execs) >= 2
    for attrs in execs:
        assert isinstance(attrs.get("patchtwin.exit_code"), int)
        expected = "ok" if attrs["patchtwin.exit_code"] == 0 else "nonzero_exit"
        assert attrs[ATTR_OUTCOME] in (expected, "timed_out")


async def test_an_event_the_relay_publishes_later_continues_its_runs_trace(
    pipeline: App, settings: Settings, spans: InMemorySpanExporter
) -> None:
    """The outbox keeps the traceparent: an event stored in a run's span but published later by
    the relay (the broker was away, or the service crashed) still lands in that run's trace."""
    stage = pipeline.stages["janitor"]
    run_id = new_run_id("relay")
    with trace.get_tracer("test").start_as_current_span("janitor work") as span:
        await stage.ledger.finish(run_id, TwinReleased(run_id=run_id, twins=[], reason="test"), source=stage.source)
    stored_in = span.get_span_context().trace_id

    # nothing publishes it now: the stage's relay task finds it in the outbox a few seconds later
    [record] = await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=30)
    traceparent = dict(record.headers)["traceparent"].decode()
    assert int(traceparent.split("-")[1], 16) == stored_in
