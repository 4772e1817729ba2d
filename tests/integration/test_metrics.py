"""Each process's HTTP endpoint: `/metrics` describes the runs it handled (Prometheus text, read
back with prometheus_client's parser), `/healthz` and `/readyz` say whether it lives and can work."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from patchtwin.cli.app import SERVICES, App
from patchtwin.observability.http import Endpoints
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def scrape(app: App) -> dict[str, list[Any]]:
    """Metric name → its samples, from the app's /metrics."""
    assert app.endpoints is not None and app.endpoints.url is not None
    status, text = await _get(f"{app.endpoints.url}/metrics")
    assert status == 200
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    matching = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(matching)


async def test_metrics_describe_a_run_after_it_ends(
    pipeline: App, settings: Settings, runtime: DockerRuntime
) -> None:
    assert pipeline.sampler is not None
    before = await scrape(pipeline)
    run_id = new_run_id("metrics")
    checks: list[dict[str, Any]] = [{"type": "port", "port": 80}, {"type": "http", "url": "http://127.0.0.1/"}]
    await publish(settings, "twin.requested", nginx_request(run_id, "true", checks=checks, keep_twin=True))
    await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=120)
    try:
        await pipeline.sampler.refresh()
        after = await scrape(pipeline)
    finally:
        await runtime.destroy_run(run_id)

    # The pipeline is shared by the session: another test's late event may be counted in
    # between, so each count grows by at least this run's one.
    for stage in SERVICES:
        assert value(after, "patchtwin_stage_duration_seconds_count", stage=stage) >= value(
            before, "patchtwin_stage_duration_seconds_count", stage=stage) + 1, stage
        assert value(after, "patchtwin_stage_duration_seconds_sum", stage=stage) > 0, stage
    assert value(after, "patchtwin_runs_total", status="passed") >= value(
        before, "patchtwin_runs_total", status="passed") + 1
    for family in ("port", "http"):
        assert value(after, "patchtwin_check_results_total", family=family, classification="stable") >= value(
            before, "patchtwin_check_results_total", family=family, classification="stable") + 1
    # the kept twin is alive and measured
    assert value(after, "patchtwin_twins_alive") >= 1
    assert value(after, "patchtwin_twin_memory_bytes", run_id=run_id) > 0
    assert value(after, "patchtwin_twin_cpu_seconds_total", run_id=run_id) > 0
    assert value(after, "patchtwin_twin_operation_duration_seconds_count", operation="create", outcome="ok") >= 1
    lag_groups = {s.labels["group"] for s in after["patchtwin_consumer_lag"]}
    assert lag_groups == {f"patchtwin-{name}" for name in SERVICES}


async def test_health_and_readiness(pipeline: App) -> None:
    assert pipeline.endpoints is not None and pipeline.endpoints.url is not None
    status, _ = await _get(f"{pipeline.endpoints.url}/healthz")
    assert status == 200
    status, body = await _get(f"{pipeline.endpoints.url}/readyz")
    checks = json.loads(body)["checks"]
    # one check per runtime in use (docker, and kubernetes: the fake API server), all answering
    assert set(checks) == {"kafka", "database", *pipeline.runtimes.names()}  # type: ignore[union-attr]
    assert checks == dict.fromkeys(checks, True), body
    assert status == 200, body


async def test_not_ready_while_a_dependency_does_not_answer() -> None:
    async def answers() -> bool:
        return True

    async def refuses() -> bool:
        raise ConnectionRefusedError("database down")

    endpoints = await Endpoints("127.0.0.1", 0, ("analyzer",), {"kafka": answers, "database": refuses}).start()
    try:
        assert endpoints.url is not None
        status, body = await _get(f"{endpoints.url}/readyz")
        assert status == 503
        assert '"database": false' in body and '"kafka": true' in body
        assert (await _get(f"{endpoints.url}/healthz"))[0] == 200
    finally:
        await endpoints.stop()


async def test_a_busy_port_leaves_the_services_running_without_an_endpoint() -> None:
    first = await Endpoints("127.0.0.1", 0, ("analyzer",), {}).start()
    try:
        assert first.url is not None
        port = int(first.url.rsplit(":", 1)[1])
        second = await Endpoints("127.0.0.1", port, ("analyzer",), {}).start()
        assert second.url is None
        await second.stop()
    finally:
        await first.stop()
