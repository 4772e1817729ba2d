"""Plain clients, as a scanner and a ticketing system would use them: aiokafka directly,
none of patchtwin's own publishing code."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from patchtwin.settings import Settings
from patchtwin.twins.images import web_ref

NGINX_CHECKS: list[dict[str, Any]] = [
    {"type": "port", "port": 80},
    {"type": "service", "name": "nginx"},
    {"type": "http", "url": "http://127.0.0.1/", "expect_status": 200},
    {"type": "process", "name": "nginx"},
    {"type": "package", "name": "openssl"},
    {"type": "log", "path": "/var/log/nginx/error.log", "pattern": "emerg|crit"},
    {"type": "command", "run": "nginx -t", "expect_exit": 0},
]


def new_run_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def nginx_request(run_id: str, script: str, *, checks: list[dict[str, Any]] | None = None,
                  timeout_s: float = 60, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "asset": {"id": "web-01", "platform": {"os": "debian", "version": "12"},
                  "image": web_ref("12"), "services": ["nginx"]},
        "patch": {"id": "P-1001", "script": script, "timeout_s": timeout_s},
        "checks": NGINX_CHECKS if checks is None else checks,
        **extra,
    }


async def publish(settings: Settings, topic: str, value: bytes | dict[str, Any],
                  key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None) -> None:
    """Value only, no headers unless given: all the contract asks of a client."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        body = json.dumps(value).encode() if isinstance(value, dict) else value
        await producer.send_and_wait(topic, body, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, *, match: Any, count: int = 1,
                     timeout_s: float = 120, settle_s: float = 0.0) -> list[Any]:
    """Records of `topic` (from its start) for which match(record) is true: waits until
    `count` are found, then `settle_s` longer to catch any extra."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        settle_deadline: float | None = None
        while time.monotonic() < (settle_deadline or deadline):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(r for r in records if match(r))
            if len(found) >= count and settle_deadline is None:
                settle_deadline = time.monotonic() + settle_s
        return found
    finally:
        await consumer.stop()


def keyed(run_id: str) -> Any:
    return lambda record: record.key == run_id.encode()


async def verdicts_of(settings: Settings, run_id: str, *, settle_s: float = 3.0,
                      timeout_s: float = 120) -> list[dict[str, Any]]:
    records = await read_topic(settings, "verdict.issued", match=keyed(run_id), count=1,
                               timeout_s=timeout_s, settle_s=settle_s)
    return [json.loads(r.value) for r in records]


@asynccontextmanager
async def serving(files: dict[str, bytes]) -> AsyncIterator[str]:
    """An HTTP server on the host that the executor can fetch from (a twin cannot: it has no
    network): `/NAME` answers `files[NAME]` as it is at the time of the request, so a test can
    change the content between runs. Yields the base URL."""

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.Response(body=files[name]) if name in files else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
