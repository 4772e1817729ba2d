"""`patchtwin demo`: a good and a breaking patch on a Debian 12 nginx twin, end to end."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rich.console import Console

from patchtwin.cli.client import follow, submit
from patchtwin.cli.views import print_verdict
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from patchtwin.twins.images import ensure_demo_images, web_ref
from schemas import VerdictIssued
from schemas.topics import Topic

CHECKS: list[dict[str, Any]] = [
    {"type": "port", "port": 80},
    {"type": "service", "name": "nginx"},
    {"type": "http", "url": "http://127.0.0.1/", "expect_status": 200},
    {"type": "process", "name": "nginx"},
    {"type": "package", "name": "openssl"},
    {"type": "log", "path": "/var/log/nginx/error.log", "pattern": "emerg|crit"},
    {"type": "command", "run": "nginx -t", "expect_exit": 0},
]

GOOD_PATCH = (
    "#!/bin/sh\nset -e\n"
    "sed -i 's/worker_connections 768/worker_connections 1024/' /etc/nginx/nginx.conf\n"
    "nginx -t\nservice nginx reload\n"
)
BREAKING_PATCH = (
    "#!/bin/sh\nset -e\n"
    "sed -i 's/listen 80 default_server/listen 8080 default_server/' "
    "/etc/nginx/sites-enabled/default\n"
    "service nginx restart\n"
)

STAGE_OF = {
    Topic.TWIN_REQUESTED: "requested",
    Topic.TWIN_READY: "twin ready (baseline taken)",
    Topic.PATCH_APPLIED: "patch applied",
    Topic.CHECKS_COMPLETED: "checks completed",
    Topic.RUN_FAILED: "run failed",
    Topic.VERDICT_ISSUED: "verdict issued",
    Topic.TWIN_RELEASED: "twin released",
}


def demo_request(run_id: str, patch_id: str, script: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "asset": {
            "id": "web-01",
            "platform": {"os": "debian", "version": "12"},
            "image": web_ref("12"),
            "services": ["nginx"],
        },
        "patch": {"id": patch_id, "script": script, "timeout_s": 120},
        "checks": CHECKS,
    }


async def run_demo(settings: Settings, console: Console) -> int:
    runtime = DockerRuntime(settings.docker_url)
    try:
        with console.status("preparing the Debian 12 images (built once, then cached)"):
            await ensure_demo_images(runtime, settings.state_dir)
    finally:
        await runtime.close()
    tag = uuid.uuid4().hex[:6]
    runs = {
        f"demo-{tag}-good": ("P-GOOD", GOOD_PATCH, "passed"),
        f"demo-{tag}-breaking": ("P-BREAK", BREAKING_PATCH, "failed"),
    }
    started = time.monotonic()
    for run_id, (patch_id, script, _) in runs.items():
        await submit(settings, demo_request(run_id, patch_id, script))
        console.print(f"[bold]submitted[/] {run_id} ({patch_id})")
    verdicts: dict[str, VerdictIssued] = {}
    async for event in follow(settings, set(runs), timeout_s=600, until_released=True):
        elapsed = time.monotonic() - started
        console.print(f"  {elapsed:6.2f}s  {event.run_id:<28} {STAGE_OF[event.topic]}")
        if event.topic is Topic.VERDICT_ISSUED:
            verdicts[event.run_id] = VerdictIssued.model_validate(event.value)
    for verdict in verdicts.values():
        print_verdict(console, verdict)
    expected_ok = all(verdicts[r].status.value == want for r, (_, _, want) in runs.items())
    console.print(
        "[green]demo: the good patch passed and the breaking patch failed[/]" if expected_ok
        else "[red]demo: verdicts differ from what the patches should give[/]"
    )
    return 0 if expected_ok else 1
