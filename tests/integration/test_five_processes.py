"""Five `patchtwin service NAME` processes on one host, as deployed without containers: each
serves /healthz on a port of its own, its default or a free one it records and prints.

They run on the session's broker and database under their own topic prefix and instance, so
they never join the session pipeline's consumer groups nor touch its twins."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchtwin.cli.app import SERVICES
from patchtwin.observability.http import default_port
from patchtwin.settings import Settings
from tests.chaos.harness import Services


def _busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _five(settings: Settings, state_dir: Path, http_port: str | None) -> AsyncIterator[Services]:
    tag = uuid.uuid4().hex[:10]
    services = Services(settings.model_copy(update={"instance": f"five-{tag}"}), state_dir)
    services.env["PATCHTWIN_TOPIC_PREFIX"] = f"five-{tag}."
    services.env.pop("PATCHTWIN_HTTP_PORT")
    if http_port is not None:
        services.env["PATCHTWIN_HTTP_PORT"] = http_port
    try:
        await asyncio.to_thread(services.start_all)
        yield services
    finally:
        await asyncio.to_thread(services.stop_all)


async def _healthz(url: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
        assert response.status == 200, url
        return list((await response.json())["services"])


async def _answer_each_on_its_own(services: Services) -> dict[str, int]:
    """Service → port, from its record; each answers /healthz there as itself, and printed it."""
    ports = {}
    for name in SERVICES:
        url = json.loads((services.log_dir / "http" / f"{name}.json").read_text())["url"]
        assert await _healthz(url) == [name]
        assert f"patchtwin {name} is running; HTTP at {url}" in (services.log_dir / f"{name}.1.log").read_text()
        ports[name] = int(url.rsplit(":", 1)[1])
    assert len(set(ports.values())) == len(SERVICES), ports
    return ports


@pytest.fixture
async def on_default_ports(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    busy = [port for name in SERVICES if _busy(port := default_port((name,)))]
    if busy:
        pytest.skip(f"default ports taken on this host by another process: {busy}")
    async for services in _five(settings, tmp_path, None):
        yield services


@pytest.fixture
async def on_free_ports(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async for services in _five(settings, tmp_path, "0"):
        yield services


async def test_five_services_each_answer_on_their_default_port(on_default_ports: Services) -> None:
    ports = await _answer_each_on_its_own(on_default_ports)
    assert ports == {name: default_port((name,)) for name in SERVICES}


async def test_five_services_on_free_ports_record_them_until_they_stop(on_free_ports: Services) -> None:
    await _answer_each_on_its_own(on_free_ports)
    await asyncio.to_thread(on_free_ports.stop_all)
    assert not list((on_free_ports.log_dir / "http").glob("*.json"))
