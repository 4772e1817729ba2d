"""The benchmark's arithmetic: where a run's time went, the bus hops, the statistics, the floor's
execs, the reference request and the judgement against the targets. No broker, no Docker."""

from __future__ import annotations

import io
import json
import math
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import bench.run
from bench.run import (
    Interval,
    Seen,
    _median,
    _p95,
    breakdown,
    covered,
    floor_steps,
    handler_hops,
    hops,
    merged_evidence_steps,
    outside_stages,
    read_spans,
    reference_request,
    show,
    stage_split,
    summarize_split,
    work_hops,
)
from patchtwin.checks.engine import build_script
from patchtwin.cli.demo import GOOD_PATCH
from patchtwin.twins.images import web_ref
from schemas import TwinRequested
from schemas.topics import Topic
from tests.contract import TWIN_REQUESTED

DAY = "2026-11-29T"


def epoch(clock: str) -> float:
    """Seconds since the epoch of a UTC time of day on the bench day (what time.time() and a
    Kafka record's timestamp give)."""
    return datetime.fromisoformat(f"{DAY}{clock}Z").timestamp()


def span(stage: str, start: str, end: str) -> dict[str, str]:
    """A StageSpan as the services serialize it (pydantic: ISO 8601, UTC as Z)."""
    return {"stage": stage, "started_at": f"{DAY}{start}Z", "finished_at": f"{DAY}{end}Z"}


PROVISION = span("provision", "09:00:00.350000", "09:00:02.350000")
PATCH = span("patch", "09:00:02.372000", "09:00:03.122000")
PROBE = span("probe", "09:00:03.141000", "09:00:04.641000")
ANALYZE = span("analyze", "09:00:04.658000", "09:00:04.668000")


def reference_run(*, released: bool = True, completed: bool = True) -> Seen:
    """One good run as the collector sees it: published at 09:00:00.100, the verdict issued at
    04.670 and received at 04.690, the twin released at 05.170."""
    seen = Seen(published=epoch("09:00:00.100"))
    seen.events[Topic.VERDICT_ISSUED] = {"status": "passed", "occurred_at": f"{DAY}09:00:04.670000Z",
                                         "timeline": [PROVISION, PATCH, PROBE, ANALYZE]}
    seen.received[Topic.VERDICT_ISSUED] = epoch("09:00:04.690")
    seen.created.update({Topic.TWIN_READY: epoch("09:00:02.360"), Topic.PATCH_APPLIED: epoch("09:00:03.130"),
                         Topic.CHECKS_COMPLETED: epoch("09:00:04.650"),
                         Topic.VERDICT_ISSUED: epoch("09:00:04.672")})
    if completed:
        seen.events[Topic.CHECKS_COMPLETED] = {"context": {"timeline": [PROVISION, PATCH, PROBE]}}
    if released:
        seen.events[Topic.TWIN_RELEASED] = {"occurred_at": f"{DAY}09:00:05.170000Z", "twins": ["twin"]}
    return seen


def exactly(expected: Any) -> Any:
    """Equal up to the float rounding of epoch seconds (about 1e-7 s today)."""
    return pytest.approx(expected, abs=1e-6)


# -- breakdown --------------------------------------------------------------------------------


def test_breakdown_gives_seconds_per_stage_from_the_spans_and_the_waits_around_them() -> None:
    stages = breakdown(reference_run())

    assert stages == exactly({
        "end_to_end": 4.59,  # verdict received 04.690 - published 00.100
        "queue_wait": 0.25,  # first span start 00.350 - published 00.100
        "provision": 2.0, "patch": 0.75, "probe": 1.5, "analyze": 0.01,
        "teardown": 0.5,  # TwinReleased 05.170 - verdict 04.670
    })
    # the order is the report's row order: the whole, the wait, the stages as they ran, teardown
    assert list(stages) == ["end_to_end", "queue_wait", "provision", "patch", "probe", "analyze", "teardown"]


def test_outside_the_stages_is_the_end_to_end_less_every_stage_span() -> None:
    # 4.59 - (2.0 + 0.75 + 1.5 + 0.01): the queue wait and the hops, not the teardown after the verdict
    assert outside_stages(breakdown(reference_run())) == exactly(0.33)


def test_breakdown_reads_the_verdicts_timeline_when_checks_completed_was_not_seen() -> None:
    assert breakdown(reference_run(completed=False)) == breakdown(reference_run())


def test_breakdown_has_no_teardown_before_the_twin_is_released() -> None:
    stages = breakdown(reference_run(released=False))

    assert "teardown" not in stages
    assert stages["end_to_end"] == exactly(4.59)


def test_breakdown_of_a_verdict_without_spans_is_the_end_to_end_and_no_queue_wait() -> None:
    seen = reference_run(completed=False, released=False)
    seen.events[Topic.VERDICT_ISSUED]["timeline"] = []

    assert breakdown(seen) == exactly({"end_to_end": 4.59, "queue_wait": 0.0})


# -- bus hops and stage to stage ----------------------------------------------------------------


def test_publish_to_work_is_the_events_kafka_timestamp_to_the_start_of_the_stage_it_starts() -> None:
    assert work_hops(reference_run()) == exactly([
        0.012,  # twin.ready 02.360 -> patch 02.372
        0.011,  # patch.applied 03.130 -> probe 03.141
        0.008,  # checks.completed 04.650 -> analyze 04.658
    ])


def test_publish_to_work_skips_a_stage_without_a_span_or_an_event_without_a_timestamp() -> None:
    seen = reference_run()
    seen.events[Topic.VERDICT_ISSUED]["timeline"] = [PROVISION, PATCH, ANALYZE]  # no probe span
    del seen.created[Topic.TWIN_READY]  # twin.ready never seen

    assert work_hops(seen) == exactly([0.008])
    assert work_hops(Seen()) == []


def test_stage_to_stage_is_the_end_of_one_stage_to_the_start_of_the_next() -> None:
    assert hops(reference_run()) == exactly([
        0.022,  # provision ends 02.350 -> patch starts 02.372
        0.019,  # patch ends 03.122 -> probe starts 03.141
        0.017,  # probe ends 04.641 -> analyze starts 04.658
    ])


def test_stage_to_stage_follows_start_order_not_the_order_the_spans_are_listed_in() -> None:
    seen = reference_run()
    seen.events[Topic.VERDICT_ISSUED]["timeline"] = [ANALYZE, PATCH, PROVISION, PROBE]

    assert hops(seen) == exactly([0.022, 0.019, 0.017])


def test_stage_to_stage_orders_a_span_that_starts_on_a_whole_second_by_time() -> None:
    """pydantic writes 09:00:07 without a fraction ("...07Z"), which sorts after "...07.250000Z"
    as text although it is earlier."""
    seen = reference_run()
    seen.events[Topic.VERDICT_ISSUED]["timeline"] = [
        span("provision", "09:00:05.000000", "09:00:06.980000"),
        {"stage": "patch", "started_at": f"{DAY}09:00:07Z", "finished_at": f"{DAY}09:00:07.200000Z"},
        span("probe", "09:00:07.250000", "09:00:08.000000"),
    ]

    assert hops(seen) == exactly([0.02, 0.05])


def test_stage_to_stage_falls_back_to_the_checks_completed_timeline() -> None:
    seen = reference_run()
    del seen.events[Topic.VERDICT_ISSUED]

    assert hops(seen) == exactly([0.022, 0.019])


# -- where a stage's time goes ----------------------------------------------------------------


def otel_span(name: str, span_id: str, start: str, end: str, parent: str | None = None,
              **attributes: str) -> dict[str, Any]:
    """A span as the SDK's `to_json` writes it (the services' file exporter)."""
    return {"name": name, "context": {"trace_id": "0xt", "span_id": span_id}, "parent_id": parent,
            "start_time": f"{DAY}{start}Z", "end_time": f"{DAY}{end}Z", "attributes": attributes}


def test_spans_give_each_runs_top_level_twin_operations_named_by_purpose(tmp_path: Path) -> None:
    spans = [
        otel_span("provisioner stage", "0xa", "09:00:00.35", "09:00:02.35", **{"patchtwin.run_id": "r-1"}),
        otel_span("twin.create", "0xb", "09:00:00.36", "09:00:00.66", "0xa", **{"patchtwin.run_id": "r-1"}),
        otel_span("twin.exec", "0xc", "09:00:00.66", "09:00:00.86", "0xa",
                  **{"patchtwin.run_id": "r-1", "patchtwin.command": "readiness"}),
        otel_span("twin.supervise", "0xd", "09:00:02.40", "09:00:02.90", "0xe",
                  **{"patchtwin.run_id": "r-2", "patchtwin.command": "/bin/sh"}),
        otel_span("twin.copy_in", "0xf", "09:00:02.40", "09:00:02.45", "0xd", **{"patchtwin.run_id": "r-2"}),
        otel_span("twin.exec", "0x1", "09:00:03.00", "09:00:03.10", None),  # no run: not counted
        # FastStream's span of a handler, named after its topic; the key says the run
        otel_span("twin.ready process", "0x2", "09:00:02.36", "09:00:03.20", None,
                  **{"messaging.kafka.message.key": "r-1"}),
        otel_span("twin.ready process", "0x3", "09:00:05.00", "09:00:05.10", None,  # a redelivery: later
                  **{"messaging.kafka.message.key": "r-1"}),
    ]
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))

    found = read_spans(path)

    assert set(found.operations) == {"r-1", "r-2"}
    assert found.operations["r-1"] == [Interval("create", epoch("09:00:00.36"), epoch("09:00:00.66")),
                                       Interval("exec readiness", epoch("09:00:00.66"), epoch("09:00:00.86"))]
    # the copy inside the supervised patch is part of it, not counted again
    assert [i.name for i in found.operations["r-2"]] == ["supervise /bin/sh"]
    assert found.handled == {"r-1": {Topic.TWIN_READY: exactly(epoch("09:00:02.36"))}}
    assert read_spans(tmp_path / "missing.jsonl").operations == {}


def test_the_bus_hop_is_the_events_kafka_timestamp_to_its_handlers_start() -> None:
    seen = reference_run()
    seen.created[Topic.TWIN_REQUESTED] = epoch("09:00:00.100")
    handled = {Topic.TWIN_REQUESTED: epoch("09:00:00.109"), Topic.TWIN_READY: epoch("09:00:02.367"),
               Topic.PATCH_APPLIED: epoch("09:00:03.138"), Topic.VERDICT_ISSUED: epoch("09:00:04.680")}

    # checks.completed has no handler span here: that hop is not counted
    assert handler_hops(seen, handled) == exactly([0.009, 0.007, 0.008, 0.008])
    assert handler_hops(seen, {}) == []


def test_operations_side_by_side_are_covered_once() -> None:
    assert covered([Interval("a", 0.0, 1.0), Interval("b", 0.5, 1.5), Interval("c", 2.0, 3.0),
                    Interval("d", 2.2, 2.4)]) == exactly(2.5)
    assert covered([]) == 0.0


def baseline_operations(offset: float = 0.0) -> list[Interval]:
    """A provision (00.350 to 02.350): create, readiness, two probe rounds beside a snapshot;
    then a patch (02.372 to 03.122) supervised from 02.400 to 02.900."""
    def at(clock: str) -> float:
        return epoch(clock) + offset

    return [
        Interval("create", at("09:00:00.36"), at("09:00:00.66")),
        Interval("exec readiness", at("09:00:00.66"), at("09:00:00.86")),
        Interval("exec patchtwin-probe", at("09:00:00.86"), at("09:00:01.06")),
        Interval("exec snapshot", at("09:00:00.86"), at("09:00:01.21")),
        Interval("exec patchtwin-probe", at("09:00:01.06"), at("09:00:01.26")),
        Interval("supervise /bin/sh", at("09:00:02.40"), at("09:00:02.90")),
    ]


def test_a_stage_splits_into_time_in_the_engine_and_patchtwins_own() -> None:
    split = stage_split(reference_run(), baseline_operations())

    assert set(split) == {"provision", "patch", "probe"}
    provision = split["provision"]
    assert (provision["span_s"], provision["engine_s"], provision["own_s"]) == exactly((2.0, 0.9, 1.1))
    assert provision["ops"]["exec patchtwin-probe"] == exactly({"calls": 2, "seconds": 0.4})
    assert provision["ops"]["exec snapshot"] == exactly({"calls": 1, "seconds": 0.35})
    assert (split["patch"]["engine_s"], split["patch"]["own_s"]) == exactly((0.5, 0.25))
    probe = split["probe"]  # no operation seen in it: all of it is patchtwin's own
    assert (probe["span_s"], probe["engine_s"], probe["own_s"], probe["ops"]) == (exactly(1.5), 0.0, exactly(1.5), {})


def test_the_split_is_summarized_by_medians_over_runs_slowest_operation_first() -> None:
    fast = stage_split(reference_run(), baseline_operations())
    slow = stage_split(reference_run(), baseline_operations())
    slow["provision"]["ops"]["create"]["seconds"] = 0.5
    summary = summarize_split([fast, slow, fast])

    assert summary["provision"]["engine_s"] == exactly(0.9)
    assert summary["provision"]["ops"]["create"] == exactly({"calls": 1, "seconds": 0.3})
    assert next(iter(summary["provision"]["ops"])) == "exec patchtwin-probe"  # 0.4 s: first
    assert summarize_split([]) == {}


# -- statistics -------------------------------------------------------------------------------


def test_median_of_odd_and_even_counts_and_nan_for_nothing() -> None:
    assert _median([3.0, 1.0, 2.0]) == 2.0
    assert _median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert math.isnan(_median([]))


def test_p95_is_the_value_at_the_95th_percentile_rank_of_the_sorted_values() -> None:
    assert _p95([5.0]) == 5.0
    assert _p95([float(v) for v in range(10, 0, -1)]) == 10.0  # rank round(0.95 * 9) = 9: the largest
    assert _p95([float(v) for v in range(1, 21)]) == 19.0  # rank round(0.95 * 19) = 18: not the outlier
    assert math.isnan(_p95([]))


# -- the floor and the reference request ------------------------------------------------------


def test_reference_request_is_a_valid_twin_request_with_the_contracts_seven_check_families() -> None:
    request = TwinRequested.model_validate(reference_request("bench-ref-1"))

    assert request.run_id == "bench-ref-1"
    assert (request.asset.platform.os, request.asset.platform.version) == ("debian", "12")
    assert request.asset.image == web_ref("12")
    assert request.patch.script == GOOD_PATCH
    assert reference_request("bench-ref-1")["checks"] == TWIN_REQUESTED["checks"]
    assert [c.type for c in request.checks] == ["port", "service", "http", "process", "package", "log", "command"]


def contract_checks() -> list[str]:
    return ["bash", "-c", build_script(TwinRequested.model_validate(reference_request("floor")).checks)]


def test_floor_is_three_execs_start_nginx_the_patch_and_the_checks() -> None:
    assert floor_steps(with_evidence=False) == [
        ["service", "nginx", "start"],
        ["sh", "-c", GOOD_PATCH],
        contract_checks(),
    ]


def test_floor_with_evidence_adds_baseline_repeats_and_snapshots_around_the_patch() -> None:
    steps = floor_steps(with_evidence=True)
    checks, state = contract_checks(), steps[3]

    assert steps == [
        ["service", "nginx", "start"],
        checks, checks,  # the baseline, twice
        state,  # the state before the patch
        ["sh", "-c", GOOD_PATCH],
        state,  # the state after it
        checks, checks,  # the checks after the patch, twice
    ]
    # the snapshot is the services' own: /etc and the nginx service (sysv), at most 5000 files
    assert state[:2] == ["bash", "-c"]
    assert state[3:] == ["snapshot", "5000", "root:/etc", "svc:nginx:sysv"]


def test_the_merged_evidence_is_the_same_programs_in_one_exec_per_stage() -> None:
    provision, patch, probe = merged_evidence_steps()
    state = floor_steps(with_evidence=True)[3]
    checks = contract_checks()[2]

    assert provision[3:] == ["provision", state[2], checks, *state[4:]]
    assert patch[3:] == ["patch", state[2], GOOD_PATCH, *state[4:]]
    assert probe[3:] == ["probe", state[2], checks]


def test_the_merged_programs_run_what_they_are_given_in_order() -> None:
    """Run here with stand-ins: `$1` the snapshot, `$2` the probe (or, for the patch, the patch)."""
    def run(step: list[str], snapshot: str, other: str) -> str:
        argv = [*step[:4], snapshot, other, *step[6:]]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout

    _, patch, probe = merged_evidence_steps()
    assert run(probe, "echo snapshot", "echo round") == "round\nround\n"
    assert run(patch, 'echo "snapshot $*"', "echo patched") == "patched\nsnapshot 5000 root:/etc svc:nginx:sysv\n"


# -- the judgement against the targets ----------------------------------------------------------


def result(*, ratio: float = 1.2, hop_ms: float = 8.0, per_minute: float = 42.0, errors: int = 0) -> dict[str, Any]:
    """What `main` returns, with the figures the targets judge set as given."""
    figures = {"median_s": 1.0, "p95_s": 1.5}
    return {
        "reference": {"runs": 10, "statuses": {"passed": 10},
                      "stages": {"end_to_end": {"median_s": 4.59, "p95_s": 5.1}}},
        "floor": figures, "floor_with_evidence": figures,
        "ratio_to_floor": ratio, "ratio_to_floor_with_evidence": 1.1,
        "throughput": {"runs": 40, "elapsed_s": 57.1, "runs_per_minute": per_minute, "errors": errors,
                       "statuses": {"passed": 40}, "max_twins_alive": 8, "twin_limit": 8, "stage_workers": 4,
                       "services_peak_rss_mb": 310.0},
        "bus_hop": {"count": 30, "median_ms": hop_ms, "p95_ms": hop_ms + 5},
        "stage_to_stage": {"count": 30, "median_ms": 20.0, "p95_ms": 30.0},
        "burst_hop": {"count": 120, "median_ms": 40.0, "p95_ms": 90.0},
    }


def judgements(monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any]) -> dict[str, str]:
    """The "met" column of the targets table `show` prints, by figure."""
    out = io.StringIO()
    monkeypatch.setattr(bench.run, "console", Console(file=out, width=200))
    show(figures)
    printed = out.getvalue()
    rows = [line.split("│") for line in printed.split("targets", 1)[1].splitlines()]
    return {cells[1].strip(): cells[4].strip() for cells in rows if len(cells) == 6 and cells[1].strip() != "figure"}


RATIO, THROUGHPUT = "median end-to-end / floor", "throughput, 40 at once"
HOP = "bus hop median (publish → handler start, reference runs)"


def test_show_judges_every_target_met_when_the_figures_are_within_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert judgements(monkeypatch, result()) == {RATIO: "yes", HOP: "yes", THROUGHPUT: "yes"}


@pytest.mark.parametrize(("figures", "judged"), [
    ({"ratio": 1.5}, {RATIO: "yes"}),
    ({"ratio": 1.51}, {RATIO: "no"}),
    ({"hop_ms": 20.0}, {HOP: "yes"}),
    ({"hop_ms": 20.1}, {HOP: "no"}),
    ({"per_minute": 30.0}, {THROUGHPUT: "yes"}),
    ({"per_minute": 29.9}, {THROUGHPUT: "no"}),
    ({"errors": 1}, {THROUGHPUT: "no"}),
])
def test_show_judges_each_target_on_its_own_figure_at_and_past_the_limit(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], judged: dict[str, str]
) -> None:
    assert judgements(monkeypatch, result(**figures)) == {RATIO: "yes", HOP: "yes", THROUGHPUT: "yes", **judged}
