"""Each process's HTTP port: its own default per service, and a free port recorded where a
reader finds it (and forgets it on stop)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiohttp

from patchtwin.observability.http import BASE_PORT, Endpoints, default_port
from schemas.stages import StageName


def test_each_service_has_its_own_default_port_in_stage_order() -> None:
    ports = [default_port((name,)) for name in StageName]
    assert ports == [8081, 8082, 8083, 8084, 8085]
    assert default_port(tuple(StageName)) == BASE_PORT == 8080  # `patchtwin up`


async def test_a_free_port_is_recorded_while_it_serves(tmp_path: Path) -> None:
    record = tmp_path / "http" / "analyzer.json"
    endpoints = await Endpoints("127.0.0.1", 0, ("analyzer",), {}, record=record).start()
    try:
        written = json.loads(record.read_text())
        assert written == {"services": ["analyzer"], "url": endpoints.url, "pid": os.getpid()}
        assert not written["url"].endswith(":0")
        async with aiohttp.ClientSession() as session, session.get(f"{written['url']}/healthz") as response:
            assert response.status == 200
    finally:
        await endpoints.stop()
    assert not record.exists()


async def test_stop_leaves_the_record_of_a_later_process(tmp_path: Path) -> None:
    record = tmp_path / "analyzer.json"
    endpoints = await Endpoints("127.0.0.1", 0, ("analyzer",), {}, record=record).start()
    later = {"services": ["analyzer"], "url": "http://127.0.0.1:1", "pid": os.getpid() + 1}
    record.write_text(json.dumps(later))
    await endpoints.stop()
    assert json.loads(record.read_text()) == later
