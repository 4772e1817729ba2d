"""`patchtwin rerun RUN_ID`: a run repeated exactly on the real stack — the same request under a
new run id, a second verdict, and the same bytes put into the twin, or a coded refusal when a
source no longer serves what the original run recorded."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from patchtwin.cli.app import App
from patchtwin.cli.commands import _parser, _rerun
from patchtwin.core import store
from patchtwin.settings import Settings
from tests.clients import new_run_id, serving
from tests.integration.test_executor import request, verdict_for

CONF = b"key=value\n"


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A URL the executor fetches, and the bytes behind it (a test may change them)."""
    content = {"tool.sh": b"#!/bin/sh\necho tool v1\n"}
    async with serving(content) as url:
        yield f"{url}/tool.sh", content


async def first_run(settings: Settings, url: str) -> str:
    run_id = new_run_id("orig")
    body = request(run_id, "/usr/local/bin/tool; cat /etc/app.conf", artifacts=[
        {"path": "/usr/local/bin/tool", "url": url, "mode": "0755"},
        {"path": "/etc/app.conf", "content_base64": base64.b64encode(CONF).decode()},
    ])
    verdict = await verdict_for(settings, body)
    assert verdict["status"] == "passed", verdict["summary"]
    return run_id


async def rerun(settings: Settings, run_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    exit_code = await _rerun(_parser().parse_args(["rerun", run_id, "--wait", "--json", "--timeout", "120"]),
                             settings)
    out, err = capsys.readouterr()
    return exit_code, out, err


async def test_a_rerun_gets_a_second_verdict_with_the_same_patch_content_hashes(
    pipeline: App, settings: Settings, served: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = served
    original = await first_run(settings, url)
    capsys.readouterr()

    exit_code, out, err = await rerun(settings, original, capsys)

    assert exit_code == 0, err
    verdict = json.loads(out[out.index("{"):])
    assert verdict["status"] == "passed" and verdict["run_id"] != original
    assert verdict["patch"]["stdout"] == "tool v1\nkey=value\n"
    assert f"same inputs as run {original}: 2 artifacts" in err
    assert settings.database_url
    pool = await store.connect(settings.database_url, max_size=2)
    try:
        first, second = await store.load_patch_run(pool, original), await store.load_patch_run(pool, verdict["run_id"])
        asked = await store.load_request(pool, verdict["run_id"])
    finally:
        await pool.close()
    assert first is not None and second is not None and asked is not None
    hashes = [(a["path"], a["sha256"]) for a in second.inputs["artifacts"]]
    assert hashes == [(a["path"], a["sha256"]) for a in first.inputs["artifacts"]]
    assert hashes[1] == ("/etc/app.conf", hashlib.sha256(CONF).hexdigest())
    assert asked["rerun_of"] == original
    assert asked["patch"]["artifacts"][0]["url"] == url  # fetched again, not copied from the record


async def test_a_url_that_now_serves_other_bytes_is_refused_with_rerun_input_changed(
    pipeline: App, settings: Settings, served: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, content = served
    original = await first_run(settings, url)
    content["tool.sh"] = b"#!/bin/sh\necho tool v2\n"
    capsys.readouterr()

    exit_code, out, err = await rerun(settings, original, capsys)

    assert exit_code == 2, err
    verdict = json.loads(out[out.index("{"):])
    assert verdict["status"] == "error"
    assert [i["code"] for i in verdict["issues"]] == ["RERUN_INPUT_CHANGED"]
    message = verdict["issues"][0]["message"]
    assert url in message and hashlib.sha256(content["tool.sh"]).hexdigest() in message
    assert verdict["patch"] is None  # nothing ran


async def test_rerun_of_an_unknown_run_exits_2_with_run_not_found(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, _, err = await rerun(settings, new_run_id("nosuch"), capsys)

    assert exit_code == 2
    assert "RUN_NOT_FOUND" in err


async def test_a_request_naming_a_run_with_no_patch_on_record_is_an_invalid_request(
    pipeline: App, settings: Settings
) -> None:
    body = {**request(new_run_id("orphan"), "true"), "rerun_of": new_run_id("nosuch")}

    verdict = await verdict_for(settings, body)

    assert verdict["status"] == "error"
    assert [i["code"] for i in verdict["issues"]] == ["INVALID_REQUEST"]
    assert body["rerun_of"] in verdict["issues"][0]["message"]
