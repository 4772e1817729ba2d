"""Where the time goes, against the physical floor, in one run on one machine.

    .venv/bin/python -m bench.run [--runs 10] [--burst 40] [--out bench/results/latest.json]

Starts `patchtwin up` as its own process (embedded broker, PostgreSQL, the five services), then:

1. the reference scenario `--runs` times, one after another: publish → verdict, by stage;
2. the floor: the same container work done directly with the Docker API, as many times; and
   the floor with the same evidence (baseline, snapshots, repeats) as bare execs, to show
   what the orchestration itself adds;
3. throughput: `--burst` runs published at once;
4. bus overhead: publish-to-handler-start of every Kafka hop seen in 1 (in 3, shown apart),
   and stage to stage (with the outbox commit before the publish);
5. where each stage's time goes: the services write their spans to a file
   (`PATCHTWIN_OTEL_EXPORTER=file`), and each reference run's `twin.*` spans (create, each exec
   by purpose, copies) are laid over its stages: time in the engine versus patchtwin's own.

Every figure comes from this run; the targets are judged on the ratios, not on absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiodocker
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from patchtwin.checks.engine import build_script
from patchtwin.cli.client import PROGRESS_TOPICS
from patchtwin.cli.demo import CHECKS, GOOD_PATCH
from patchtwin.settings import Settings
from patchtwin.twins.docker import LABEL_OWNER
from patchtwin.twins.images import web_ref
from patchtwin.twins.snapshot import build_script as snapshot_script
from schemas import TwinRequested
from schemas.topics import Topic

console = Console()
#: The bench's services label their twins with this owner, so twins of anything else running
#: on the machine are not counted.
BENCH_OWNER = f"patchtwin-bench-{os.getpid()}"


def reference_request(run_id: str) -> dict[str, Any]:
    """The reference scenario: Debian 12 nginx twin, a one-line config patch, the contract's
    seven check families."""
    return {
        "run_id": run_id,
        "asset": {"id": "bench-web", "platform": {"os": "debian", "version": "12"},
                  "image": web_ref("12"), "services": ["nginx"]},
        "patch": {"id": "P-BENCH", "script": GOOD_PATCH, "timeout_s": 120},
        "checks": CHECKS,
    }


# -- the system under test, in its own process ------------------------------------------------


@dataclass
class Services:
    process: subprocess.Popen[bytes]
    bootstrap: str

    @classmethod
    def start(cls, state_dir: Path) -> Services:
        env = {**os.environ, "PATCHTWIN_STATE_DIR": str(state_dir), "PATCHTWIN_OWNER": BENCH_OWNER,
               "PATCHTWIN_OTEL_EXPORTER": "file", "PATCHTWIN_OTEL_FILE": str(state_dir / "spans.jsonl")}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        env.pop("DATABASE_URL", None)
        log = (state_dir / "up.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "patchtwin", "up"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        endpoints = state_dir / "endpoints.json"
        deadline = time.monotonic() + 180
        while not endpoints.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"patchtwin up did not start; see {state_dir / 'up.log'}")
            time.sleep(0.2)
        return cls(process, json.loads(endpoints.read_text())["kafka_bootstrap_servers"])

    def memory_mb(self, field_name: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- watching the topics ----------------------------------------------------------------------


@dataclass
class Seen:
    """What a client can observe of one run."""

    run_id: str = ""
    published: float = 0.0
    events: dict[Topic, dict[str, Any]] = field(default_factory=dict)
    received: dict[Topic, float] = field(default_factory=dict)
    #: when each event was published: its Kafka record's timestamp (set by the producer)
    created: dict[Topic, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Collector:
    """One consumer on every progress topic, by assignment from the current end."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.runs: dict[str, Seen] = defaultdict(Seen)
        # a client that waits for verdicts asks the broker not to hold its fetches (as the services do)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          fetch_max_wait_ms=Settings().kafka_fetch_max_wait_ms)
        self._task: asyncio.Task[None] | None = None
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)

    async def start(self) -> None:
        await self._consumer.start()
        await self._producer.start()
        partitions = []
        for topic in PROGRESS_TOPICS:
            found = self._consumer.partitions_for_topic(topic.value)
            while not found:
                await self._consumer._client.force_metadata_update()
                found = self._consumer.partitions_for_topic(topic.value)
                await asyncio.sleep(0.1)
            partitions += [TopicPartition(topic.value, p) for p in found]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now, not on the first publish
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        while True:
            for tp, records in (await self._consumer.getmany(timeout_ms=100)).items():
                for record in records:
                    run_id = record.key.decode() if record.key else ""
                    seen = self.runs[run_id]
                    topic = Topic(tp.topic)
                    seen.events[topic] = json.loads(record.value)
                    seen.received[topic] = time.time()
                    seen.created[topic] = record.timestamp / 1000
                    if {Topic.VERDICT_ISSUED, Topic.TWIN_RELEASED} <= seen.events.keys():
                        seen.done.set()

    async def submit(self, request: dict[str, Any]) -> Seen:
        """Publishes as a scanner would: the run id as key, the request as value."""
        seen = self.runs[request["run_id"]]
        seen.run_id = request["run_id"]
        seen.published = time.time()
        await self._producer.send_and_wait(Topic.TWIN_REQUESTED.value, json.dumps(request).encode(),
                                           key=request["run_id"].encode(), timestamp_ms=int(seen.published * 1000))
        seen.created[Topic.TWIN_REQUESTED] = seen.published
        return seen

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()
        await self._producer.stop()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def breakdown(seen: Seen) -> dict[str, float]:
    """Seconds per stage of one run, from the spans the services record in the events."""
    verdict = seen.events[Topic.VERDICT_ISSUED]
    completed = seen.events.get(Topic.CHECKS_COMPLETED, {})
    spans = {s["stage"]: s for s in completed.get("context", {}).get("timeline", [])}
    if "analyze" not in spans and verdict.get("timeline"):
        spans.update({s["stage"]: s for s in verdict["timeline"]})
    out: dict[str, float] = {"end_to_end": seen.received[Topic.VERDICT_ISSUED] - seen.published}
    first = min((_ts(s["started_at"]) for s in spans.values()), default=seen.published)
    out["queue_wait"] = first - seen.published
    for stage, span in spans.items():
        out[stage] = _ts(span["finished_at"]) - _ts(span["started_at"])
    if Topic.TWIN_RELEASED in seen.events:
        out["teardown"] = _ts(seen.events[Topic.TWIN_RELEASED]["occurred_at"]) - _ts(verdict["occurred_at"])
    return out


def outside_stages(stages: dict[str, float]) -> float:
    """The part of a run's end to end in no stage's span: the bus, the ledger's commits, claims
    and decoding (the queue wait included)."""
    spans = sum(v for k, v in stages.items() if k not in ("end_to_end", "queue_wait", "teardown"))
    return stages["end_to_end"] - spans


#: Each hop between stages: the event one stage publishes, and the span of the stage it starts.
HOPS = ((Topic.TWIN_READY, "patch"), (Topic.PATCH_APPLIED, "probe"), (Topic.CHECKS_COMPLETED, "analyze"))
#: Every Kafka hop of a run: the request, the three between stages, the verdict to the janitor.
ALL_HOPS = (Topic.TWIN_REQUESTED, Topic.TWIN_READY, Topic.PATCH_APPLIED, Topic.CHECKS_COMPLETED,
            Topic.VERDICT_ISSUED)


def handler_hops(seen: Seen, handled: dict[Topic, float]) -> list[float]:
    """Publish to handler start, the issue's bus overhead: the event's Kafka timestamp (set by
    its producer when it sends) to the start of the consuming handler (FastStream's `process`
    span), for each hop of the run that both ends were seen of."""
    return [handled[topic] - seen.created[topic] for topic in ALL_HOPS if topic in handled and topic in seen.created]


def verdict_spans(seen: Seen) -> dict[str, dict[str, str]]:
    """Stage name → its span, from the verdict's timeline (none before the verdict is seen)."""
    return {s["stage"]: s for s in seen.events.get(Topic.VERDICT_ISSUED, {}).get("timeline") or []}


def work_hops(seen: Seen) -> list[float]:
    """Publish to the start of the next stage's work: a hop, plus decoding the event and the
    ledger's claim on the run (its database round trips)."""
    spans = verdict_spans(seen)
    return [_ts(spans[stage]["started_at"]) - seen.created[topic]
            for topic, stage in HOPS if stage in spans and topic in seen.created]


def hops(seen: Seen) -> list[float]:
    """Stage to stage: the previous stage's end of work (then its event is committed to the
    outbox, durably, and published) to the next stage's start of work."""
    verdict = seen.events.get(Topic.VERDICT_ISSUED, {})
    timeline = verdict.get("timeline") or seen.events.get(Topic.CHECKS_COMPLETED, {}).get(
        "context", {}).get("timeline", [])
    ordered = sorted(timeline, key=lambda s: _ts(s["started_at"]))
    return [_ts(b["started_at"]) - _ts(a["finished_at"]) for a, b in itertools.pairwise(ordered)]


# -- where a stage's time goes: its spans ------------------------------------------------------

#: the stages whose work happens in the twin, as the events' timeline names them
TWIN_STAGES = ("provision", "patch", "probe")


@dataclass(frozen=True)
class Interval:
    name: str
    start: float
    end: float


@dataclass
class Spans:
    """What the services' spans tell of each run (by run id)."""

    #: top-level twin operations (`twin.*` spans not inside another one), each named by
    #: operation and, for an exec, by purpose (`exec readiness`, `exec snapshot`, ...)
    operations: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    #: when a handler began on each of the run's events (the `<topic> process` spans)
    handled: dict[str, dict[Topic, float]] = field(default_factory=lambda: defaultdict(dict))


def read_spans(path: Path) -> Spans:
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    twin_ops = {s["context"]["span_id"] for s in spans if s["name"].startswith("twin.")}
    topics = {f"{t.value} process": t for t in Topic}
    found = Spans()
    for span in spans:
        attributes = span.get("attributes") or {}
        run_id = attributes.get("patchtwin.run_id") or attributes.get("messaging.kafka.message.key")
        if not run_id:
            continue
        start = _ts(span["start_time"])
        if span["name"] in topics:
            topic = topics[span["name"]]
            found.handled[run_id][topic] = min(start, found.handled[run_id].get(topic, start))
        elif span["name"].startswith("twin.") and span.get("parent_id") not in twin_ops:
            name = span["name"].removeprefix("twin.")
            if "patchtwin.command" in attributes:
                name += f" {attributes['patchtwin.command']}"
            found.operations[run_id].append(Interval(name, start, _ts(span["end_time"])))
    return found


def covered(intervals: list[Interval]) -> float:
    """Seconds inside at least one interval (operations that ran side by side count once)."""
    total, reach = 0.0, float("-inf")
    for interval in sorted(intervals, key=lambda i: i.start):
        if interval.end > reach:
            total += interval.end - max(interval.start, reach)
            reach = interval.end
    return total


def stage_split(seen: Seen, operations: list[Interval]) -> dict[str, dict[str, Any]]:
    """Per twin stage: its span, the time in the engine (twin operations, side by side counted
    once), patchtwin's own time (the rest), and each kind of operation's calls and seconds."""
    spans = verdict_spans(seen)
    split: dict[str, dict[str, Any]] = {}
    for stage in TWIN_STAGES:
        if stage not in spans:
            continue
        start, end = _ts(spans[stage]["started_at"]), _ts(spans[stage]["finished_at"])
        inside = [i for i in operations if start <= i.start < end]
        engine = covered([Interval(i.name, i.start, min(i.end, end)) for i in inside])
        kinds: dict[str, dict[str, float]] = {}
        for op in inside:
            kind = kinds.setdefault(op.name, {"calls": 0, "seconds": 0.0})
            kind["calls"] += 1
            kind["seconds"] += op.end - op.start
        split[stage] = {"span_s": end - start, "engine_s": engine, "own_s": end - start - engine, "ops": kinds}
    return split


def summarize_split(splits: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Medians over runs of `stage_split`: per stage and per kind of operation."""
    summary: dict[str, dict[str, Any]] = {}
    for stage in TWIN_STAGES:
        runs = [s[stage] for s in splits if stage in s]
        if not runs:
            continue
        kinds = sorted({k for r in runs for k in r["ops"]}, key=lambda k: -_median(
            [r["ops"].get(k, {}).get("seconds", 0.0) for r in runs]))
        summary[stage] = {
            **{f: round(_median([r[f] for r in runs]), 3) for f in ("span_s", "engine_s", "own_s")},
            "ops": {k: {"calls": _median([r["ops"].get(k, {}).get("calls", 0) for r in runs]),
                        "seconds": round(_median([r["ops"].get(k, {}).get("seconds", 0.0) for r in runs]), 3)}
                    for k in kinds},
        }
    return summary


# -- the floor --------------------------------------------------------------------------------


def floor_steps(*, with_evidence: bool) -> list[list[str]]:
    """The execs of a floor run. The issue's floor: start nginx, the patch, one exec with the
    checks. With evidence, what a verdict also needs, still as bare execs: the checks twice
    and a state snapshot before the patch, a snapshot and the checks twice after it."""
    request = TwinRequested.model_validate(reference_request("floor"))
    checks = ["bash", "-c", build_script(request.checks)]
    if not with_evidence:
        return [["service", "nginx", "start"], ["sh", "-c", GOOD_PATCH], checks]
    state = snapshot_script(request.asset, ["/etc"], 5000, {"nginx": "sysv"})
    return [["service", "nginx", "start"], checks, checks, state, ["sh", "-c", GOOD_PATCH], state, checks, checks]


#: One stage's programs in one exec: $1 the snapshot program, $2 the probe program, then the
#: snapshot's arguments. The baseline's snapshot runs beside its two rounds.
_MERGED_PROVISION = ('service nginx start >/dev/null; (bash -c "$1" snapshot "${@:3}" > /tmp/.floor-state) & '
                     'bash -c "$2" probe; bash -c "$2" probe; wait; cat /tmp/.floor-state')
_MERGED_PATCH = 'sh -c "$2"; bash -c "$1" snapshot "${@:3}"'
_MERGED_PROBE = 'bash -c "$2" probe; bash -c "$2" probe'


def merged_evidence_steps() -> list[list[str]]:
    """The same evidence at the least it could cost: each stage's execs merged into one program
    (3 execs, as the issue's floor has), repeats back to back, no supervisor, no bus, no ledger."""
    request = TwinRequested.model_validate(reference_request("floor"))
    _, _, state_program, _, *state_args = snapshot_script(request.asset, ["/etc"], 5000, {"nginx": "sysv"})
    checks = build_script(request.checks)
    return [["bash", "-c", _MERGED_PROVISION, "provision", state_program, checks, *state_args],
            ["bash", "-c", _MERGED_PATCH, "patch", state_program, GOOD_PATCH, *state_args],
            ["bash", "-c", _MERGED_PROBE, "probe", state_program, checks]]


async def floor_once(docker: aiodocker.Docker, image: str, steps: list[list[str]] | None = None) -> float:
    """The same container work with the Docker API and nothing else: create and start a twin,
    the execs of `steps` (the issue's floor by default), remove."""
    steps = steps if steps is not None else floor_steps(with_evidence=False)
    started = time.perf_counter()
    container = await docker.containers.create(
        config={"Image": image, "Cmd": ["sleep", "infinity"],
                "HostConfig": {"NetworkMode": "none", "Init": True}},
        name=f"patchtwin-floor-{uuid.uuid4().hex[:8]}")
    try:
        await container.start()
        for argv in steps:
            execution = await container.exec(argv)
            async with execution.start(detach=False) as stream:
                while await stream.read_out() is not None:
                    pass
    finally:
        await container.delete(force=True)
    return time.perf_counter() - started


# -- the scenarios ----------------------------------------------------------------------------


@dataclass
class Floors:
    """Seconds per run of each kind of floor (see `floor_steps`, `merged_evidence_steps`)."""

    floor: list[float] = field(default_factory=list)
    evidence: list[float] = field(default_factory=list)
    merged: list[float] = field(default_factory=list)


async def reference_and_floor(collector: Collector, docker: aiodocker.Docker, runs: int) -> tuple[list[Seen], Floors]:
    """Alternates a patchtwin run and the floor runs, so all see the same machine load."""
    results, floors = [], Floors()
    image = web_ref("12")
    for i in range(runs + 1):  # the first round warms caches and is not counted
        seen = await collector.submit(reference_request(f"bench-ref-{uuid.uuid4().hex[:8]}"))
        await asyncio.wait_for(seen.done.wait(), 300)
        floor_s = await floor_once(docker, image)
        evidence_s = await floor_once(docker, image, floor_steps(with_evidence=True))
        merged_s = await floor_once(docker, image, merged_evidence_steps())
        if i:
            results.append(seen)
            floors.floor.append(floor_s)
            floors.evidence.append(evidence_s)
            floors.merged.append(merged_s)
    return results, floors


async def twins_alive(docker: aiodocker.Docker) -> int:
    return len(await docker.containers.list(filters={"label": [f"{LABEL_OWNER}={BENCH_OWNER}"]}))


async def throughput(collector: Collector, services: Services, docker: aiodocker.Docker,
                     burst: int) -> dict[str, Any]:
    requests = [reference_request(f"bench-burst-{uuid.uuid4().hex[:8]}") for _ in range(burst)]
    peak_twins, peak_rss = 0, 0.0
    started = time.time()
    seen = await asyncio.gather(*(collector.submit(r) for r in requests))
    pending = [s.done.wait() for s in seen]
    waiter = asyncio.ensure_future(asyncio.wait_for(asyncio.gather(*pending), 900))
    while not waiter.done():
        peak_twins = max(peak_twins, await twins_alive(docker))
        peak_rss = max(peak_rss, services.memory_mb())
        await asyncio.sleep(0.25)
    await waiter
    last_verdict = max(s.received[Topic.VERDICT_ISSUED] for s in seen)
    statuses = [s.events[Topic.VERDICT_ISSUED]["status"] for s in seen]
    elapsed = last_verdict - started
    return {
        "runs": burst,
        "elapsed_s": round(elapsed, 2),
        "runs_per_minute": round(burst / elapsed * 60, 1),
        "errors": statuses.count("error"),
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "max_twins_alive": peak_twins,
        "twin_limit": Settings().twin_limit(),
        "stage_workers": Settings().stage_workers,
        "services_peak_rss_mb": round(max(peak_rss, services.memory_mb("VmHWM")), 1),
        "seen": seen,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="patchtwin-bench-") as scratch:
        services = await asyncio.to_thread(Services.start, Path(scratch))
        spans = Spans()
        # the floor is bare Docker on purpose (no runtime), on the engine the services use
        docker = aiodocker.Docker(url=Settings().docker_url)
        collector = Collector(services.bootstrap)
        try:
            await collector.start()
            console.print(f"reference scenario and floor: {args.runs} runs each, alternating")
            ref, floors = await reference_and_floor(collector, docker, args.runs)
            console.print(f"throughput: {args.burst} runs at once")
            burst = await throughput(collector, services, docker, args.burst)
        finally:
            await collector.stop()
            await docker.close()
            await asyncio.to_thread(services.stop)
            spans = read_spans(Path(scratch) / "spans.jsonl")  # complete once the services stopped
    stages = [breakdown(s) for s in ref]
    stage_names = [k for k in stages[0]] if stages else []
    # The bus overhead is measured on the reference runs (one at a time); in the burst a hop
    # also holds the wait for a free worker (back-pressure), shown apart.
    ref_hops = [h for s in ref for h in handler_hops(s, spans.handled.get(s.run_id, {}))]
    to_work = [h for s in ref for h in work_hops(s)]
    stage_hops = [h for s in ref for h in hops(s)]
    burst_seen: list[Seen] = burst.pop("seen")
    burst_hops = [h for s in burst_seen for h in handler_hops(s, spans.handled.get(s.run_id, {}))]
    e2e = [s["end_to_end"] for s in stages]
    outside = [outside_stages(s) for s in stages]
    ref_statuses = [s.events[Topic.VERDICT_ISSUED]["status"] for s in ref]
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "reference": {
            "runs": len(ref), "statuses": {s: ref_statuses.count(s) for s in set(ref_statuses)},
            "stages": {name: {"median_s": round(_median([s.get(name, 0) for s in stages]), 3),
                              "p95_s": round(_p95([s.get(name, 0) for s in stages]), 3)}
                       for name in stage_names},
        },
        "floor": {"median_s": round(_median(floors.floor), 3), "p95_s": round(_p95(floors.floor), 3)},
        "ratio_to_floor": round(_median(e2e) / _median(floors.floor), 2),
        "floor_with_evidence": {"median_s": round(_median(floors.evidence), 3),
                                "p95_s": round(_p95(floors.evidence), 3)},
        "ratio_to_floor_with_evidence": round(_median(e2e) / _median(floors.evidence), 2),
        "evidence_merged": {"median_s": round(_median(floors.merged), 3), "p95_s": round(_p95(floors.merged), 3),
                            "ratio_to_floor": round(_median(floors.merged) / _median(floors.floor), 2)},
        "throughput": burst,
        "bus_hop": {"count": len(ref_hops), "median_ms": round(1000 * _median(ref_hops), 1),
                    "p95_ms": round(1000 * _p95(ref_hops), 1)},
        "bus_hop_to_work": {"count": len(to_work), "median_ms": round(1000 * _median(to_work), 1),
                            "p95_ms": round(1000 * _p95(to_work), 1)},
        "stage_to_stage": {"count": len(stage_hops), "median_ms": round(1000 * _median(stage_hops), 1),
                           "p95_ms": round(1000 * _p95(stage_hops), 1)},
        "burst_hop": {"count": len(burst_hops), "median_ms": round(1000 * _median(burst_hops), 1),
                      "p95_ms": round(1000 * _p95(burst_hops), 1)},
        "outside_stages": {"median_s": round(_median(outside), 3), "p95_s": round(_p95(outside), 3)},
        "where_time_goes": summarize_split([stage_split(s, spans.operations.get(s.run_id, [])) for s in ref]),
    }


def show(result: dict[str, Any]) -> None:
    table = Table(title="reference scenario (seconds)")
    for column in ("stage", "median", "p95"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for name, figures in result["reference"]["stages"].items():
        table.add_row(name, f"{figures['median_s']:.3f}", f"{figures['p95_s']:.3f}")
    table.add_row("floor (Docker API)", f"{result['floor']['median_s']:.3f}",
                  f"{result['floor']['p95_s']:.3f}")
    table.add_row("floor with the same evidence", f"{result['floor_with_evidence']['median_s']:.3f}",
                  f"{result['floor_with_evidence']['p95_s']:.3f}")
    if "evidence_merged" in result:
        table.add_row("the same evidence, one program per stage", f"{result['evidence_merged']['median_s']:.3f}",
                      f"{result['evidence_merged']['p95_s']:.3f}")
    console.print(table)
    show_split(result.get("where_time_goes", {}))
    if "outside_stages" in result:
        console.print(f"outside the stages (Kafka, the ledger's commits, claims, decoding; queue wait included): "
                      f"median {result['outside_stages']['median_s']:.3f} s")
    console.print(f"end-to-end / floor with the same evidence: {result['ratio_to_floor_with_evidence']:.2f} "
                  "(what the orchestration adds: Kafka, the database, supervision, decoding)")
    if "evidence_merged" in result:
        console.print(f"the same evidence at the least it could cost (one program per stage, repeats back to back, "
                      f"no supervisor, bus or ledger) / floor: {result['evidence_merged']['ratio_to_floor']:.2f}")
    t, hop = result["throughput"], result["bus_hop"]
    targets = [
        ("median end-to-end / floor", f"{result['ratio_to_floor']:.2f}", "≤ 1.5",
         result["ratio_to_floor"] <= 1.5),
        ("bus hop median (publish → handler start, reference runs)",
         f"{hop['median_ms']:.1f} ms (p95 {hop['p95_ms']:.1f})", "≤ 20 ms",
         hop["median_ms"] <= 20),
        (f"throughput, {t['runs']} at once", f"{t['runs_per_minute']:.1f} runs/min, {t['errors']} errors",
         "≥ 30/min, 0 errors", t["runs_per_minute"] >= 30 and t["errors"] == 0),
    ]
    summary = Table(title="targets")
    for column in ("figure", "measured", "target", "met"):
        summary.add_column(column)
    for name, measured, target, met in targets:
        summary.add_row(name, measured, target, "[green]yes[/]" if met else "[red]no[/]")
    console.print(summary)
    console.print(f"most twins alive at once: {t['max_twins_alive']} (limit {t['twin_limit']}, "
                  f"{t['stage_workers']} workers per stage); services' peak RSS: "
                  f"{t['services_peak_rss_mb']} MB; statuses: {t['statuses']}")
    if "bus_hop_to_work" in result:
        to_work = result["bus_hop_to_work"]
        console.print(f"publish → the next stage's work (the hop, decoding and the ledger's claim): median "
                      f"{to_work['median_ms']:.1f} ms, p95 {to_work['p95_ms']:.1f} ms")
    between = result["stage_to_stage"]
    console.print(f"stage to stage (with the durable outbox commit before the publish): median "
                  f"{between['median_ms']:.1f} ms, p95 {between['p95_ms']:.1f} ms")
    burst_hop = result["burst_hop"]
    console.print(f"hop in the burst (with the wait for a free worker): median {burst_hop['median_ms']:.1f} ms, "
                  f"p95 {burst_hop['p95_ms']:.1f} ms")


def show_split(split: dict[str, dict[str, Any]]) -> None:
    """Each twin stage: time in the engine (its operations) and patchtwin's own, by operation."""
    if not split:
        return
    table = Table(title="where each stage's time goes (medians, seconds)")
    for column in ("stage", "span", "in the engine", "patchtwin's own"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    table.add_column("operations: calls, seconds")
    for stage, figures in split.items():
        ops = "; ".join(f"{name} {op['calls']:g}, {op['seconds']:.3f}" for name, op in figures["ops"].items())
        table.add_row(stage, f"{figures['span_s']:.3f}", f"{figures['engine_s']:.3f}", f"{figures['own_s']:.3f}", ops)
    console.print(table)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    result = asyncio.run(main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result)
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    cli()
