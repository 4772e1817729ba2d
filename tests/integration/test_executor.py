"""Every way a patch can end, on a real twin through the whole pipeline: each ending is
recorded exactly in the verdict's `patch` and maps to its code."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from patchtwin.cli.app import App
from patchtwin.exceptions import PatchInputUnavailable
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from patchtwin.twins.images import base_ref
from services.executor.inputs import fetch_packages
from tests.clients import keyed, new_run_id, publish, read_topic, serving, verdicts_of


def request(run_id: str, script: str = "", *, timeout_s: float = 30, memory_mb: int | None = None,
            **patch: Any) -> dict[str, Any]:
    """A bare Debian 12 twin, no services, no checks: only the patch's own ending is judged."""
    asset: dict[str, Any] = {"id": "exec-01", "platform": {"os": "debian", "version": "12"},
                             "image": base_ref("12")}
    if memory_mb is not None:
        asset["resources"] = {"memory_mb": memory_mb}
    return {"run_id": run_id, "asset": asset, "checks": [],
            "patch": {"id": "P-EXEC", "script": script, "timeout_s": timeout_s, **patch}}


async def verdict_for(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    await publish(settings, "twin.requested", body)
    verdicts = await verdicts_of(settings, body["run_id"], settle_s=0.5)
    # the contract allows a re-published identical copy (same event_id), nothing else
    assert len({v["event_id"] for v in verdicts}) == 1, [(v["status"], v["summary"]) for v in verdicts]
    return verdicts[0]


def codes(items: list[dict[str, Any]]) -> list[str]:
    return [i["code"] for i in items]


async def test_exit_0_passes_with_the_exact_ending(pipeline: App, settings: Settings) -> None:
    verdict = await verdict_for(settings, request(new_run_id("exit0"), "echo done"))

    assert verdict["status"] == "passed", verdict["summary"]
    patch = verdict["patch"]
    assert (patch["exit_code"], patch["signal"], patch["timed_out"], patch["oom_killed"]) == (0, None, False, False)
    assert patch["stdout"] == "done\n"
    assert patch["observed_by"] == "supervisor"
    assert codes(verdict["issues"]) == []
    assert codes(verdict["warnings"]) == ["NO_CHECKS"]


async def test_exit_3_is_patch_failed(pipeline: App, settings: Settings) -> None:
    verdict = await verdict_for(settings, request(new_run_id("exit3"), "exit 3"))

    assert verdict["status"] == "failed"
    assert (verdict["patch"]["exit_code"], verdict["patch"]["signal"]) == (3, None)
    assert codes(verdict["issues"]) == ["PATCH_FAILED"]


async def test_exit_137_is_an_exit_code_not_a_signal(pipeline: App, settings: Settings) -> None:
    verdict = await verdict_for(settings, request(new_run_id("exit137"), "exit 137"))

    assert (verdict["patch"]["exit_code"], verdict["patch"]["signal"]) == (137, None)
    assert codes(verdict["issues"]) == ["PATCH_FAILED"]


async def test_killed_by_a_signal_is_patch_killed(pipeline: App, settings: Settings) -> None:
    verdict = await verdict_for(settings, request(new_run_id("kill9"), "kill -9 $$"))

    assert verdict["status"] == "failed"
    assert (verdict["patch"]["exit_code"], verdict["patch"]["signal"]) == (None, 9)
    assert codes(verdict["issues"]) == ["PATCH_KILLED"]


async def test_timeout_kills_the_whole_process_group_and_fails_quickly(
    pipeline: App, settings: Settings, runtime: DockerRuntime
) -> None:
    run_id = new_run_id("timeout")
    # a child in the background and one in the foreground, both far past the deadline
    body = {**request(run_id, "sleep 3071 & sleep 3072; echo never", timeout_s=2), "keep_twin": True}
    started = time.monotonic()
    verdict = await verdict_for(settings, body)
    elapsed = time.monotonic() - started

    try:
        assert verdict["status"] == "failed"
        assert codes(verdict["issues"]) == ["PATCH_TIMEOUT"]
        patch = verdict["patch"]
        assert patch["timed_out"] is True and patch["abandoned"] is False
        assert 2.0 <= patch["duration_s"] < 3.0
        assert "never" not in patch["stdout"]
        assert elapsed < 20, f"verdict took {elapsed:.1f}s"
        [twin] = await runtime.list_ours(run_id)
        ps = await runtime.exec(twin["name"], ["ps", "-eo", "args"], timeout_s=10)
        assert b"sleep 307" not in ps.stdout, ps.stdout.decode()
    finally:
        await runtime.destroy_run(run_id)


async def test_memory_past_the_twin_limit_is_patch_oom(pipeline: App, settings: Settings) -> None:
    # `tail` holds a line in memory until its end: 400 MB without a newline, under 64 MB
    body = request(new_run_id("oom"), "head -c 400000000 /dev/zero | tail > /dev/null", memory_mb=64)
    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "failed"
    assert verdict["patch"]["oom_killed"] is True
    assert codes(verdict["issues"]) == ["PATCH_OOM"]


async def test_50_mb_of_output_is_capped_and_the_run_completes(pipeline: App, settings: Settings) -> None:
    run_id = new_run_id("bigout")
    verdict = await verdict_for(settings, request(run_id, "head -c 50000000 /dev/zero | tr '\\0' x; echo END"))

    assert verdict["status"] == "passed"
    patch = verdict["patch"]
    assert patch["truncated"] is True
    assert patch["stdout_bytes"] == 50_000_004
    assert len(patch["stdout"]) < settings.patch_output_event_bytes + 100
    assert patch["stdout"].endswith("xEND\n")  # the tail is kept: that is where errors are
    assert codes(verdict["warnings"]) == ["OUTPUT_TRUNCATED", "NO_CHECKS"]
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval("SELECT stdout FROM patch_runs WHERE run_id = $1", run_id)
    finally:
        await conn.close()
    assert settings.patch_output_cap_bytes <= len(stored) < settings.patch_output_cap_bytes + 100


async def test_stderr_is_a_warning_not_a_failure(pipeline: App, settings: Settings) -> None:
    verdict = await verdict_for(settings, request(new_run_id("stderr"), "echo careful >&2"))

    assert verdict["status"] == "passed"
    assert codes(verdict["warnings"]) == ["PATCH_STDERR", "NO_CHECKS"]
    assert verdict["patch"]["stderr"] == "careful\n"


async def test_script_runs_as_the_named_user(pipeline: App, settings: Settings) -> None:
    verdict = await verdict_for(settings, request(new_run_id("user"), "id -un", user="nobody"))

    assert verdict["status"] == "passed"
    assert verdict["patch"]["stdout"] == "nobody\n"
    assert verdict["patch"]["user"] == "nobody"


@pytest.mark.parametrize("patch", [{"script": ""}, {"script": "true", "user": "root;rm"},
                                   {"script": "true", "timeout_s": 0}])
async def test_bad_patch_is_an_invalid_request_error(pipeline: App, settings: Settings,
                                                     patch: dict[str, Any]) -> None:
    body = request(new_run_id("badpatch"))
    body["patch"].update(patch)
    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "error"
    assert codes(verdict["issues"]) == ["INVALID_REQUEST"]


async def test_patch_record_is_stored_with_the_run(pipeline: App, settings: Settings) -> None:
    run_id = new_run_id("record")
    await verdict_for(settings, request(run_id, "echo recorded"))
    await read_topic(settings, "patch.applied", match=keyed(run_id))

    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT patch, outcome, stdout FROM patch_runs WHERE run_id = $1", run_id)
    finally:
        await conn.close()
    assert row is not None
    assert '"script": "echo recorded"' in row["patch"]
    assert '"exit_code": 0' in row["outcome"]
    assert row["stdout"] == b"recorded\n"


async def stored_inputs(settings: Settings, run_id: str) -> dict[str, Any]:
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT patch, inputs FROM patch_runs WHERE run_id = $1", run_id)
    finally:
        await conn.close()
    assert row is not None
    return {"patch": json.loads(row["patch"]), "inputs": json.loads(row["inputs"])}


async def test_packages_install_offline_in_a_twin_without_network(pipeline: App, settings: Settings) -> None:
    run_id = new_run_id("pkg")
    # `hello` is not in the image; the twin has only a loopback interface
    body = request(run_id, "hello; ls /sys/class/net", timeout_s=120, packages={"hello": "2.10-3"})
    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "passed", verdict["summary"]
    patch = verdict["patch"]
    assert patch["packages"] == [{"name": "hello", "requested": "2.10-3", "before": None, "after": "2.10-3"}]
    assert patch["stdout"].endswith("Hello, world!\nlo\n")
    debs = (await stored_inputs(settings, run_id))["inputs"]["packages"]
    assert [d["path"] for d in debs] == ["/opt/patchtwin/debs/hello_2.10-3_amd64.deb"]
    assert len(debs[0]["sha256"]) == 64


async def test_a_package_version_not_in_the_repositories_is_an_input_error(
    pipeline: App, settings: Settings
) -> None:
    body = request(new_run_id("nopkg"), "true", timeout_s=120, packages={"hello": "9.9-9"})
    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "error"
    assert codes(verdict["issues"]) == ["PATCH_INPUT_UNAVAILABLE"]
    assert "hello=9.9-9" in verdict["issues"][0]["message"]


async def test_packages_over_their_limit_in_all_are_an_input_error(runtime: DockerRuntime, settings: Settings) -> None:
    small = settings.model_copy(update={"package_max_bytes": 1000})  # hello's .deb is about 50 kB

    with pytest.raises(PatchInputUnavailable) as refused:
        await fetch_packages({"hello": "2.10-3"}, base_ref("12"), new_run_id("pkgcap"), runtime, small)

    assert "over 1000 bytes in all (PATCHTWIN_PACKAGE_MAX_BYTES)" in refused.value.message


@pytest.fixture
async def file_server() -> AsyncIterator[str]:
    """A URL the executor can fetch (the twin could not: it has no network)."""
    async with serving({"tool.sh": b"#!/bin/sh\necho tool ran\n"}) as url:
        yield url


async def test_artifacts_are_copied_in_with_their_mode_before_the_script(
    pipeline: App, settings: Settings, file_server: str
) -> None:
    run_id = new_run_id("artifacts")
    tool = b"#!/bin/sh\necho tool ran\n"
    conf = b"key=value\n"
    body = request(run_id, "stat -c '%a %U' /usr/local/bin/tool /etc/app/app.conf; /usr/local/bin/tool", artifacts=[
        {"path": "/usr/local/bin/tool", "url": f"{file_server}/tool.sh", "mode": "0750",
         "sha256": hashlib.sha256(tool).hexdigest()},
        {"path": "/etc/app/app.conf", "content_base64": base64.b64encode(conf).decode(), "mode": 0o600},
    ])
    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "passed", verdict["summary"]
    assert verdict["patch"]["stdout"] == "750 root\n600 root\ntool ran\n"
    stored = await stored_inputs(settings, run_id)
    assert [(a["path"], a["sha256"], a["mode"]) for a in stored["inputs"]["artifacts"]] == [
        ("/usr/local/bin/tool", hashlib.sha256(tool).hexdigest(), "0o750"),
        ("/etc/app/app.conf", hashlib.sha256(conf).hexdigest(), "0o600"),
    ]
    # the record repeats exactly: the URL's content is pinned inline with its hash
    assert base64.b64decode(stored["patch"]["artifacts"][0]["content_base64"]) == tool


async def test_an_artifact_whose_content_does_not_match_its_sha256_is_refused(
    pipeline: App, settings: Settings, file_server: str
) -> None:
    body = request(new_run_id("badhash"), "true", artifacts=[
        {"path": "/usr/local/bin/tool", "url": f"{file_server}/tool.sh", "sha256": "0" * 64}])
    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "error"
    assert codes(verdict["issues"]) == ["PATCH_INPUT_UNAVAILABLE"]
    assert "sha256" in verdict["issues"][0]["message"]
