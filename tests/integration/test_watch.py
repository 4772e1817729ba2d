"""`patchtwin watch`: the stages of a run that a plain aiokafka client started, as they happen."""

from __future__ import annotations

import asyncio
import io
import os
import sys

from rich.console import Console

from patchtwin.cli.app import App
from patchtwin.cli.watch import STAGES, watch
from patchtwin.settings import Settings
from tests.clients import new_run_id, nginx_request, publish


async def test_watch_shows_every_stage_of_a_run_started_by_a_plain_client(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("watch")
    await publish(settings, "twin.requested", nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}]))
    out = io.StringIO()

    verdict = await watch(settings, run_id, Console(file=out, width=120, force_terminal=False), timeout_s=120)

    assert verdict.run_id == run_id and verdict.status.value == "passed"
    shown = out.getvalue()
    assert f"run {run_id}" in shown
    final = shown[shown.rindex(f"run {run_id}"):]  # the last render (a non-terminal gets several)
    for _, label in STAGES:
        line = next(row for row in final.splitlines() if label in row)
        assert "done" in line and line.rstrip(" │|").endswith("s"), line
    assert "5/5" in final


async def test_watch_of_an_unknown_run_exits_3_at_its_timeout(pipeline: App, settings: Settings) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "patchtwin", "watch", new_run_id("never"), "--timeout", "2",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 3, stderr.decode()
    assert b"timeout" in stderr and stdout == b""
