"""Exactly one verdict for every request while services are SIGKILLed mid-run and
restarted, and nothing left behind: no twin, no half-done row, no unsent event.

The five services run as separate processes on their own broker, database and instance
(tests/chaos/harness.py). On failure the seed, every kill, how far each run without a verdict
got and every stage group's committed offsets are printed: a late run and a lost one look
different there (docs/operations.md, "Exactly one verdict")."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from patchtwin.cli.app import SERVICES
from patchtwin.cli.embedded import EmbeddedStack
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from patchtwin.twins.images import base_ref
from schemas.stages import StageName
from tests.chaos.harness import Services
from tests.clients import publish

RUNS = 30
#: The longest any run may go without its verdict once a stage took it: the watchdog's deadline
#: (readiness 30 s + the patch's 20 s + margin 30 s, as configured below) plus a janitor pass.
STALL_S = 30 + 20 + 30 + 10
#: The most the verdicts are waited for in all, however steadily they come.
_CAP_S = 300
STAGES = [stage.value for stage in StageName]


def small_request(run_id: str, script: str = "sleep 1", timeout_s: float = 20) -> dict[str, Any]:
    """A cheap run: a bare Debian twin, a short patch, one check."""
    return {
        "run_id": run_id,
        "asset": {"id": "chaos-host", "platform": {"os": "debian", "version": "12"}, "image": base_ref("12"),
                  "resources": {"cpus": 0.5, "memory_mb": 128, "pids": 128}},
        "patch": {"id": "P-CHAOS", "script": script, "timeout_s": timeout_s},
        "checks": [{"type": "command", "run": "true"}],
        "repeats": 1,
    }


@pytest.fixture(scope="module")
async def cluster(images: list[str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Services]:
    """Its own broker, database and instance; the logs stay in pytest's temp dir."""
    scratch = tmp_path_factory.mktemp("chaos")
    stack = await EmbeddedStack(Path(scratch)).start()
    settings = stack.configure(Settings(
        instance=f"chaos-{uuid.uuid4().hex[:10]}", stage_lease_s=3, janitor_interval_s=2,
        run_deadline_margin_s=30, readiness_timeout_s=30, shutdown_grace_s=20))
    services = Services(settings, Path(scratch))
    try:
        await asyncio.to_thread(services.start_all)
        yield services
    finally:
        await asyncio.to_thread(services.stop_all)
        runtime = DockerRuntime(owner=settings.owner, instance=settings.instance)
        for twin in await runtime.list_ours():
            await runtime.destroy(twin["name"])
        await runtime.close()
        await stack.stop()


async def _verdicts(settings: Settings, run_ids: set[str], *, stall_s: float) -> dict[str, list[Any]]:
    """Every verdict of these runs, waiting as long as verdicts keep coming: it gives up only when
    `stall_s` pass without a new run getting its verdict (or after `_CAP_S` in all), then waits
    3 s more for extra ones. A slow machine makes runs late, not lost: a run is lost only if no
    verdict comes for longer than the watchdog lets any run go without one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    by_run: dict[str, list[Any]] = defaultdict(list)
    try:
        topic = settings.topic("verdict.issued")
        while not (partitions := consumer.partitions_for_topic(topic)):
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started = progress = time.monotonic()
        settle: float | None = None
        while time.monotonic() < (settle or min(progress + stall_s, started + _CAP_S)):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if record.key is not None and (run_id := record.key.decode()) in run_ids:
                        progress = progress if run_id in by_run else time.monotonic()
                        by_run[run_id].append(record)
            if settle is None and len(by_run) == len(run_ids):
                settle = time.monotonic() + 3
        return by_run
    finally:
        await consumer.stop()


async def _diagnosis(settings: Settings, missing: set[str]) -> dict[str, Any]:
    """Where the runs without a verdict got to: each stage's ledger status, and every stage
    group's committed offset against the end of each partition (a partition nobody consumes
    shows up here as lag that never shrinks)."""
    if not missing:
        return {}
    conn = await asyncpg.connect(settings.database_url)
    try:
        progress = {run_id: {stage: await conn.fetchval(
            "SELECT status FROM stage_runs WHERE stage = $1 AND run_id = $2", stage, run_id)
            for stage in STAGES} for run_id in sorted(missing)}
    finally:
        await conn.close()
    groups = {"provisioner": ["twin.requested"], "executor": ["twin.ready"], "prober": ["patch.applied"],
              "analyzer": ["checks.completed", "run.failed"], "janitor": ["verdict.issued"]}
    offsets: dict[str, Any] = {}
    for name, topics in groups.items():
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                    group_id=settings.topic_prefix + f"patchtwin-{name}", enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            ends = await consumer.end_offsets(tps)
            offsets[name] = {f"{tp.topic}/{tp.partition}": f"{await consumer.committed(tp)}/{ends[tp]}" for tp in tps}
        finally:
            await consumer.stop()
    return {"progress": progress, "committed/end": offsets}


async def _until(check: Any, timeout_s: float) -> Any:
    """Polls an async check until it returns a falsy value (nothing wrong), then returns it."""
    deadline = time.monotonic() + timeout_s
    while (wrong := await check()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return wrong


async def _not_yet_claimed(settings: Settings, run_id: str) -> bool:
    """True until the executor has taken the run on (its patch is starting or running)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM stage_runs WHERE stage = 'executor' AND run_id = $1)", run_id)
    finally:
        await conn.close()


async def _left_behind(settings: Settings, run_ids: list[str]) -> dict[str, Any]:
    """Twins, unfinished stage rows and unsent events of these runs (empty when all is clean)."""
    runtime = DockerRuntime(owner=settings.owner, instance=settings.instance)
    conn = await asyncpg.connect(settings.database_url)
    try:
        wrong: dict[str, Any] = {}
        if twins := [t["name"] for t in await runtime.list_ours()]:
            wrong["twins"] = twins
        for stage in STAGES:
            rows = await conn.fetch("SELECT run_id FROM stage_runs WHERE stage = $1 AND status = 'working' "
                                    "AND run_id = ANY($2)", stage, run_ids)
            if rows:
                wrong[f"{stage} working"] = [r["run_id"] for r in rows]
        unsent = await conn.fetch("SELECT event_id, topic FROM outbox WHERE published_at IS NULL AND run_id = ANY($1)",
                                  run_ids)
        if unsent:
            wrong["unsent events"] = [dict(r) for r in unsent]
        judged = await conn.fetchval("SELECT count(*) FROM verdicts WHERE run_id = ANY($1)", run_ids)
        if judged != len(run_ids):
            wrong["verdict rows"] = judged
        return wrong
    finally:
        await conn.close()
        await runtime.close()


async def test_executor_killed_mid_patch_still_ends_in_exactly_one_verdict(cluster: Services) -> None:
    settings = cluster.settings
    run_id = f"chaos-midpatch-{uuid.uuid4().hex[:8]}"
    await publish(settings, "twin.requested", small_request(run_id, "sleep 6"), key=run_id.encode())
    assert not await _until(lambda: _not_yet_claimed(settings, run_id), timeout_s=60)  # its patch (6 s) runs now

    await asyncio.to_thread(cluster.restart, "executor")

    by_run = await _verdicts(settings, {run_id}, stall_s=STALL_S)
    [verdict] = [json.loads(r.value) for r in by_run[run_id]]
    assert verdict["status"] == "error"
    assert [i["code"] for i in verdict["issues"]] == ["PATCH_INTERRUPTED"]
    assert await _until(lambda: _left_behind(settings, [run_id]), timeout_s=30) == {}


async def test_executor_stopped_gracefully_mid_patch_finishes_it_first(cluster: Services) -> None:
    """SIGTERM (a deploy, a scale-down): the patch still running gets the shutdown grace to
    finish, and the run is judged on it rather than interrupted."""
    settings = cluster.settings
    run_id = f"chaos-graceful-{uuid.uuid4().hex[:8]}"
    await publish(settings, "twin.requested", small_request(run_id, "sleep 3"), key=run_id.encode())
    assert not await _until(lambda: _not_yet_claimed(settings, run_id), timeout_s=60)

    await asyncio.to_thread(cluster.restart, "executor", signal.SIGTERM)

    by_run = await _verdicts(settings, {run_id}, stall_s=STALL_S)
    [verdict] = [json.loads(r.value) for r in by_run[run_id]]
    assert verdict["status"] == "passed", verdict["summary"]
    assert verdict["patch"]["duration_s"] >= 3


async def test_thirty_runs_under_random_kills_get_thirty_verdicts_and_leave_nothing(cluster: Services) -> None:
    settings = cluster.settings
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    run_ids = [f"chaos-{seed}-{n:02d}" for n in range(RUNS)]
    # every service is killed once, one of them twice; SIGTERM once (a graceful stop)
    victims = [*SERVICES, rng.choice(list(SERVICES))]
    rng.shuffle(victims)
    kills: list[tuple[float, str, str]] = []

    async def chaos() -> None:
        started = time.monotonic()
        for number, victim in enumerate(victims):
            await asyncio.sleep(rng.uniform(1.0, 3.5))
            how = signal.SIGTERM if number == 2 else signal.SIGKILL
            await asyncio.to_thread(cluster.restart, victim, how)
            kills.append((round(time.monotonic() - started, 1), victim, how.name))

    chaos_task = asyncio.create_task(chaos())
    for run_id in run_ids:
        await publish(settings, "twin.requested", small_request(run_id), key=run_id.encode())
    await chaos_task
    by_run = await _verdicts(settings, set(run_ids), stall_s=STALL_S)

    context = f"seed {seed}, kills {kills}, logs in {cluster.log_dir}"
    outcomes = [(json.loads(r[0].value)["status"], [i["code"] for i in json.loads(r[0].value)["issues"]])
                for r in by_run.values()]
    print(f"chaos: {context}; outcomes: {sorted(map(str, outcomes))}")
    missing = set(run_ids) - set(by_run)
    assert not missing, f"runs without a verdict: {await _diagnosis(settings, missing)}; {context}"
    event_ids = {}
    for run_id, records in by_run.items():
        assert len({r.value for r in records}) == 1, f"{run_id} has two different verdicts; {context}"
        event_ids[run_id] = json.loads(records[0].value)["event_id"]
    assert len(set(event_ids.values())) == RUNS, context
    assert await _until(lambda: _left_behind(settings, run_ids), timeout_s=40) == {}, context
