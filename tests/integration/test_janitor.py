"""The janitor: twins end with their run or at their expiry, and only its own instance's twins."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime, TwinLimits
from patchtwin.twins.images import base_ref
from patchtwin.twins.runtime import LABEL_INSTANCE
from services.janitor.logic import react_to_docker_events, sweep, watchdog
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic, verdicts_of

SMALL = TwinLimits(cpus=0.5, memory_mb=64, pids=64)


async def test_sweep_removes_orphans_of_its_own_instance_only(
    pipeline: App, settings: Settings, runtime: DockerRuntime, images: list[str]
) -> None:
    """A twin whose run this instance's database does not know is an orphan to this instance,
    but another instance's twin is never touched, whatever its run."""
    other = DockerRuntime(settings.docker_url, owner=settings.owner, instance=f"other-{uuid.uuid4().hex[:8]}")
    run_id = f"orphan-{uuid.uuid4().hex[:8]}"
    try:
        ours = await runtime.create(run_id, base_ref("12"), limits=SMALL, ttl_s=600)
        theirs = await other.create(run_id, base_ref("12"), limits=SMALL, ttl_s=600)
        assert ours.name != theirs.name  # the same run id in two instances: two twins

        assert pipeline.pool is not None
        removed = await sweep(runtime, pipeline.pool, orphan_grace_s=0)

        assert ours.name in removed
        assert theirs.name not in removed
        assert await runtime.list_ours(run_id) == []
        [kept] = await other.list_ours(run_id)
        assert kept["labels"][LABEL_INSTANCE] == other.instance
    finally:
        await other.destroy_run(run_id)
        await runtime.destroy_run(run_id)
        await other.close()


async def test_sweep_spares_an_unknown_run_inside_the_grace_and_removes_an_expired_twin(
    pipeline: App, runtime: DockerRuntime, images: list[str]
) -> None:
    fresh_run, expired_run = f"fresh-{uuid.uuid4().hex[:8]}", f"expired-{uuid.uuid4().hex[:8]}"
    try:
        fresh = await runtime.create(fresh_run, base_ref("12"), limits=SMALL, ttl_s=600)
        await runtime.create(expired_run, base_ref("12"), limits=SMALL, ttl_s=0)

        assert pipeline.pool is not None
        removed = await sweep(runtime, pipeline.pool, orphan_grace_s=600)

        assert fresh.name not in removed
        assert await runtime.list_ours(expired_run) == []
        assert [t["name"] for t in await runtime.list_ours(fresh_run)] == [fresh.name]
    finally:
        await runtime.destroy_run(fresh_run)
        await runtime.destroy_run(expired_run)


async def test_twins_carry_the_instance_label(
    settings: Settings, runtime: DockerRuntime, images: list[str]
) -> None:
    run_id = f"labelled-{uuid.uuid4().hex[:8]}"
    try:
        await runtime.create(run_id, base_ref("12"), limits=SMALL, ttl_s=60)
        [twin] = await runtime.list_ours(run_id)
        assert twin["labels"][LABEL_INSTANCE] == settings.instance
    finally:
        await runtime.destroy_run(run_id)


async def test_a_run_past_its_deadline_ends_in_one_error_verdict(pipeline: App, settings: Settings) -> None:
    """The watchdog fails a run stuck past its deadline; the stage that was still working
    finishes later, and its late result is dropped: the run keeps its one verdict."""
    run_id = new_run_id("overdue")
    await publish(settings, "twin.requested",
                  nginx_request(run_id, "sleep 4", checks=[{"type": "port", "port": 80}]))
    await read_topic(settings, "twin.ready", match=keyed(run_id))
    assert pipeline.pool is not None
    await pipeline.pool.execute(
        "UPDATE stage_runs SET deadline_at = now() - interval '1 second' WHERE stage = 'provisioner' AND run_id = $1",
        run_id)

    janitor = pipeline.stages["janitor"]
    assert await watchdog(janitor) == [run_id]
    assert await watchdog(janitor) == []  # once

    [verdict] = await verdicts_of(settings, run_id, settle_s=0)
    assert verdict["status"] == "error"
    assert [i["code"] for i in verdict["issues"]] == ["RUN_DEADLINE_EXCEEDED"]
    assert "executor" in verdict["issues"][0]["message"]  # where it was stuck
    # The executor still ends its attempt: with PatchApplied if the patch finished first, or
    # with RunFailed if the janitor removed the finished run's twin under it first.
    executor = await _ended(pipeline, "executor", run_id)
    assert executor is not None and executor["status"] in ("done", "failed")
    assert await verdicts_of(settings, run_id, settle_s=3) == [verdict]
    if executor["status"] == "done":  # the prober gets the late PatchApplied and drops it
        prober = await _ended(pipeline, "prober", run_id)
        assert prober is not None and prober["status"] == "failed" and "abandoned" in prober["outcome"]


async def _ended(pipeline: App, stage: str, run_id: str, timeout_s: float = 60) -> Any:
    """The stage's row for the run once it is no longer working (None if it never ends)."""
    assert pipeline.pool is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = await pipeline.pool.fetchrow(
            "SELECT status, outcome FROM stage_runs WHERE stage = $1 AND run_id = $2 AND status <> 'working'",
            stage, run_id)
        if row is not None:
            return row
        await asyncio.sleep(0.2)
    return None


async def test_a_twin_no_run_needs_is_removed_as_soon_as_it_dies(
    pipeline: App, runtime: DockerRuntime, images: list[str]
) -> None:
    """The janitor follows Docker's events: a twin of an unknown run that dies goes at once,
    not at the next sweep."""
    run_id = f"dies-{uuid.uuid4().hex[:8]}"
    assert pipeline.pool is not None
    follower = asyncio.create_task(react_to_docker_events(runtime, pipeline.pool, orphan_grace_s=0))
    try:
        twin = await runtime.create(run_id, base_ref("12"), limits=SMALL, ttl_s=600)
        await asyncio.sleep(0.5)  # the subscription is open
        await runtime.docker.containers.container(twin.name).kill()

        deadline = time.monotonic() + 10
        while await runtime.list_ours(run_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await runtime.list_ours(run_id) == []
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await runtime.destroy_run(run_id)
