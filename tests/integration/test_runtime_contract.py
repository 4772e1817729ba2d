"""What every twin runtime promises (`patchtwin.twins.runtime.TwinRuntime`), checked the
same way against the three: Docker (the real engine), Kubernetes (on the fake API server,
whose Pods are Docker containers) and the in-memory double (`patchtwin.twins.memory`).

Where a runtime legitimately differs, its case is a strict xfail naming why: if it ever
starts behaving like the others, the mark fails and must go."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from patchtwin.exceptions import ImageUnavailable, TwinLost
from patchtwin.settings import Settings
from patchtwin.twins.docker import DockerRuntime
from patchtwin.twins.kubernetes import KubernetesRuntime
from patchtwin.twins.memory import MemoryEngine, MemoryRuntime
from patchtwin.twins.runtime import (
    CUT_MARKER,
    LABEL_CREATED,
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_RUN,
    TwinLimits,
    TwinRuntime,
)
from schemas.asset import Asset
from schemas.events import TwinRef
from tests.clients import new_run_id
from tests.kubernetes.fake_apiserver import FakeApiServer

IMAGE = "patchtwin/debian-nginx:12"
LIMITS = TwinLimits(cpus=0.5, memory_mb=256, pids=256)
KINDS = ("docker", "kubernetes", "memory")


@dataclass
class Backend:
    """A runtime, and a maker of another instance's runtime on the same engine or cluster."""

    kind: str
    runtime: TwinRuntime
    peer: Callable[[str], TwinRuntime]
    request: pytest.FixtureRequest
    asset: Asset | None = None

    async def create(self, run_id: str, ttl_s: int = 600) -> TwinRef:
        return await self.runtime.create(run_id, IMAGE, limits=LIMITS, ttl_s=ttl_s, asset=self.asset)

    def differs(self, **reasons: str) -> None:
        """Marks this case an expected difference of the runtimes named, with why; strict,
        so the case still runs and must fail for them."""
        if self.kind in reasons:
            self.request.node.add_marker(pytest.mark.xfail(strict=True, reason=reasons[self.kind]))


@pytest.fixture(params=KINDS)
async def backend(request: pytest.FixtureRequest,
                  kubeconfig: tuple[Path, FakeApiServer | None]) -> AsyncIterator[Backend]:
    """The runtime of each kind (the fake API server is in-process: cheap to have for all)."""
    instance = f"contract-{uuid.uuid4().hex[:8]}"
    made: list[TwinRuntime] = []

    def keep(runtime: TwinRuntime) -> TwinRuntime:
        made.append(runtime)
        return runtime

    if request.param == "docker":
        found = Backend("docker", keep(DockerRuntime(instance=instance)),
                        lambda other: keep(DockerRuntime(instance=other)), request)
    elif request.param == "kubernetes":
        def kubernetes(name: str) -> TwinRuntime:
            runtime = KubernetesRuntime(Settings(k8s_kubeconfig=str(kubeconfig[0]), k8s_ready_timeout_s=20,
                                                 instance=name), owner="patchtwin-contract")
            runtime.poll_s = 0.05
            return keep(runtime)

        # baseline: root with a writable root filesystem, as the Docker and in-memory twins
        asset = Asset.model_validate({"id": "web-01", "platform": {"os": "debian", "version": "12"},
                                      "runtime": "kubernetes", "kubernetes": {"profile": "baseline"}})
        found = Backend("kubernetes", kubernetes(instance), kubernetes, request, asset)
    else:
        engine = MemoryEngine()
        found = Backend("memory", keep(MemoryRuntime(engine, instance=instance)),
                        lambda other: keep(MemoryRuntime(engine, instance=other)), request)
    try:
        yield found
    finally:
        for runtime in made:
            for row in await runtime.list_ours():
                await runtime.destroy(row["name"])
            await runtime.close()
        if request.param == "memory":
            await engine.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> bool:
    """Kubernetes deletes a namespace in the background: wait, bounded, for what must come."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_ping_answers(backend: Backend) -> None:
    assert await backend.runtime.ping() is True


async def test_image_exists_tells_a_present_image_from_a_missing_one(backend: Backend) -> None:
    backend.differs(kubernetes="the cluster pulls images itself: any name may exist until a Pod tries it")
    assert await backend.runtime.image_exists(IMAGE) is True
    assert await backend.runtime.image_exists("patchtwin/no-such-image:1") is False


async def test_creating_from_a_missing_image_is_image_unavailable(backend: Backend) -> None:
    with pytest.raises(ImageUnavailable):
        await backend.runtime.create(new_run_id("ct-noimage"), "patchtwin/no-such-image:1", limits=LIMITS,
                                     ttl_s=600, asset=backend.asset)


async def test_a_twin_is_listed_with_its_labels_by_its_own_instance_only(backend: Backend) -> None:
    run_id = new_run_id("ct-labels")
    twin = await backend.create(run_id, ttl_s=900)
    other = backend.peer(f"contract-other-{uuid.uuid4().hex[:8]}")
    theirs = await other.create(new_run_id("ct-theirs"), IMAGE, limits=LIMITS, ttl_s=600, asset=backend.asset)

    [row] = await backend.runtime.list_ours(run_id)
    ours = await backend.runtime.list_ours()

    assert twin.runtime == backend.runtime.name
    assert row["name"] == twin.name and row["id"]
    labels = row["labels"]
    assert (labels[LABEL_RUN], labels[LABEL_OWNER], labels[LABEL_INSTANCE]) == (
        run_id, backend.runtime.owner, backend.runtime.instance)
    ttl = datetime.fromisoformat(labels[LABEL_EXPIRES]) - datetime.fromisoformat(labels[LABEL_CREATED])
    assert ttl.total_seconds() == 900
    assert [r["name"] for r in ours] == [twin.name]
    assert [r["name"] for r in await other.list_ours()] == [theirs.name]


async def test_creating_the_same_run_again_replaces_its_twin(backend: Backend) -> None:
    run_id = new_run_id("ct-again")
    first = await backend.create(run_id)
    await backend.runtime.exec(first, ["touch", "/root/first-attempt"], timeout_s=10)

    second = await backend.create(run_id)
    left = await backend.runtime.exec(second, ["sh", "-c", "test -e /root/first-attempt"], timeout_s=10)

    assert [r["name"] for r in await backend.runtime.list_ours(run_id)] == [second.name]
    assert left.exit_code == 1  # a fresh twin, not the first attempt's


async def test_exec_keeps_exit_code_stdout_and_stderr_apart(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-exec"))

    result = await backend.runtime.exec(twin, ["sh", "-c", "id -u; echo oops >&2; exit 3"], timeout_s=10)

    assert (result.exit_code, result.stdout, result.stderr) == (3, b"0\n", b"oops\n")
    assert (result.stdout_bytes, result.stderr_bytes, result.timed_out, result.truncated) == (2, 5, False, False)
    assert result.observed_by == "exec"


async def test_exec_runs_as_the_user_asked_for(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-user"))

    result = await backend.runtime.exec(twin, ["id", "-un"], timeout_s=10, user="nobody")

    assert (result.exit_code, result.stdout) == (0, b"nobody\n")


async def test_exec_past_its_timeout_is_killed_and_says_so(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-timeout"))

    result = await backend.runtime.exec(twin, ["sleep", "30"], timeout_s=0.5, grace_s=5)

    assert (result.timed_out, result.exit_code) == (True, 137)
    assert result.duration_s < 5


async def test_exec_output_is_capped_head_and_tail_and_counted(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-cap"))

    result = await backend.runtime.exec(twin, ["seq", "1", "20000"], timeout_s=10, output_cap=1000)

    head, _, tail = result.stdout.partition(CUT_MARKER)
    assert head.startswith(b"1\n2\n") and tail.endswith(b"19999\n20000\n")
    assert len(head) + len(tail) == 1000
    assert (result.stdout_bytes, result.truncated) == (len(b"".join(b"%d\n" % i for i in range(1, 20001))), True)


async def test_files_copied_in_keep_content_and_mode_and_read_back(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-files"))

    await backend.runtime.put_files(twin, [("/opt/patchtwin/a/one", b"first\n", 0o700),
                                           ("/opt/patchtwin/a/two", b"\x00binary\xff", 0o644)])
    modes = await backend.runtime.exec(twin, ["stat", "-c", "%a %n", "/opt/patchtwin/a/one",
                                              "/opt/patchtwin/a/two"], timeout_s=10)

    assert modes.stdout == b"700 /opt/patchtwin/a/one\n644 /opt/patchtwin/a/two\n"
    assert await backend.runtime.read_file(twin, "/opt/patchtwin/a/two") == b"\x00binary\xff"
    assert await backend.runtime.read_file(twin, "/opt/patchtwin/a/one", limit=3) == b"fir"
    assert await backend.runtime.read_file(twin, "/opt/patchtwin/none") is None


async def test_a_file_written_in_the_twin_is_read_out(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-read"))

    await backend.runtime.exec(twin, ["sh", "-c", "printf 'from the twin' > /root/made"], timeout_s=10)

    assert await backend.runtime.read_file(twin, "/root/made") == b"from the twin"


async def test_supervised_runs_tell_exit_signal_and_timeout_apart(backend: Backend) -> None:
    twin = await backend.create(new_run_id("ct-supervise"))
    script = (b"#!/bin/sh\necho out; echo err >&2\ncase $1 in exit) exit 7 ;; signal) kill -TERM $$ ;;"
              b" hang) sleep 30 ;; esac\n")
    files = [("/opt/patchtwin/patch", script, 0o700)]

    async def run(how: str) -> tuple[Any, ...]:
        result = await backend.runtime.run_supervised(twin, ["/opt/patchtwin/patch", how], timeout_s=1,
                                                      grace_s=5, files=files)
        return result.exit_code, result.signal, result.timed_out, result.observed_by, result.stdout, result.stderr

    assert await run("exit") == (7, None, False, "supervisor", b"out\n", b"err\n")
    assert await run("signal") == (None, 15, False, "supervisor", b"out\n", b"err\n")
    assert (await run("hang"))[1:4] == (9, True, "supervisor")


async def test_destroy_removes_the_twin_and_reports_whether_there_was_one(backend: Backend) -> None:
    run_id = new_run_id("ct-destroy")
    twin = await backend.create(run_id)

    assert await backend.runtime.destroy(twin.name) is True

    async def gone() -> bool:
        return await backend.runtime.list_ours(run_id) == []

    assert await eventually(gone)
    assert await backend.runtime.destroy(twin.name) is False
    with pytest.raises(TwinLost):
        await backend.runtime.exec(twin, ["true"], timeout_s=5)


async def test_destroy_run_removes_the_runs_twins_and_names_them(backend: Backend) -> None:
    run_id, kept = new_run_id("ct-run"), new_run_id("ct-kept")
    twin = await backend.create(run_id)
    other = await backend.create(kept)

    assert await backend.runtime.destroy_run(run_id) == [twin.name]

    async def gone() -> bool:
        return await backend.runtime.list_ours(run_id) == []

    assert await eventually(gone)
    assert [r["name"] for r in await backend.runtime.list_ours(kept)] == [other.name]


async def test_exec_in_a_twin_that_never_was_is_twin_lost(backend: Backend) -> None:
    with pytest.raises(TwinLost):
        await backend.runtime.exec(f"patchtwin-never-{uuid.uuid4().hex[:8]}", ["true"], timeout_s=5)


def test_the_double_is_a_twin_runtime() -> None:
    assert isinstance(MemoryRuntime(), TwinRuntime)

