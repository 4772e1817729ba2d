"""The five services' routers on FastStream's in-memory test broker, with twins from the
in-memory runtime: the whole pipeline's logic in seconds, no Kafka and no Docker. The
stages' ledger and outbox are real PostgreSQL (embedded), as in production."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from patchtwin.cli.app import SERVICES, include_routers
from patchtwin.cli.embedded import EmbeddedDatabase
from patchtwin.core import store
from patchtwin.core.bus import make_broker
from patchtwin.core.stage import Stage
from patchtwin.settings import Settings
from patchtwin.twins import Runtimes
from patchtwin.twins.memory import MemoryRuntime
from schemas import Topic
from tests.clients import new_run_id, nginx_request

#: What the in-memory nginx stand-in can be checked for (it has no `nginx -t`, no openssl).
CHECKS: list[dict[str, Any]] = [
    {"type": "port", "port": 80},
    {"type": "service", "name": "nginx"},
    {"type": "http", "url": "http://127.0.0.1/", "expect_status": 200},
    {"type": "process", "name": "nginx"},
    {"type": "package", "name": "nginx"},
]
#: Every topic a run's events pass through, in order, up to the twin's release.
JOURNEY = (Topic.TWIN_READY, Topic.PATCH_APPLIED, Topic.CHECKS_COMPLETED, Topic.VERDICT_ISSUED, Topic.TWIN_RELEASED)


@dataclass
class Pipeline:
    broker: KafkaBroker
    runtime: MemoryRuntime
    settings: Settings
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def run(self, request: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Publishes a request; the test broker delivers inline, so every stage has run when
        this returns. The events each topic carried for the run, by topic."""
        await self.broker.publish(json.dumps(request).encode(), self.settings.topic(Topic.TWIN_REQUESTED.value))
        return {topic: [e for e in events if e["run_id"] == request["run_id"]] for topic, events in self.seen.items()}


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="patchtwin-routers-") as scratch:
        embedded = EmbeddedDatabase(Path(scratch) / "pgdata")
        url = embedded.start()
        try:
            yield url
        finally:
            embedded.stop()


@pytest.fixture
async def pipeline(database: str) -> AsyncIterator[Pipeline]:
    # the test broker never dials the bootstrap servers: named only because the broker factory needs some
    settings = Settings(database_url=database, kafka_bootstrap_servers="in-memory:9092",
                        instance=f"routers-{uuid.uuid4().hex[:8]}", readiness_timeout_s=15,
                        topic_prefix=f"r{uuid.uuid4().hex[:6]}.")
    pool = await store.connect(database)
    await store.migrate(pool)
    runtime = MemoryRuntime(owner=settings.owner, instance=settings.instance)
    broker = make_broker(settings, client_id="patchtwin-routers-test")
    stages = {name: Stage(name, pool=pool, broker=broker, settings=settings) for name in SERVICES}
    include_routers(broker, stages, Runtimes([runtime]))
    found = Pipeline(broker, runtime, settings)
    for topic in JOURNEY:
        found.seen[topic] = observe(broker, settings.topic(topic.value))
    try:
        async with TestKafkaBroker(broker):
            yield found
    finally:
        await runtime.close()
        await pool.close()


def observe(broker: KafkaBroker, topic: str) -> list[dict[str, Any]]:
    """The events published on `topic`, as they went out."""
    events: list[dict[str, Any]] = []

    @broker.subscriber(topic, group_id=f"observer-{topic}")
    async def seen(message: KafkaMessage) -> None:
        events.append(json.loads(message.body))

    return events


async def test_a_harmless_patch_passes_through_every_stage(pipeline: Pipeline) -> None:
    run_id = new_run_id("routers-pass")

    events = await pipeline.run(nginx_request(run_id, "echo harmless > /root/note", checks=CHECKS))

    assert {topic: len(events[topic]) for topic in JOURNEY} == dict.fromkeys(JOURNEY, 1)
    [verdict] = events[Topic.VERDICT_ISSUED]
    assert verdict["status"] == "passed", verdict["summary"]
    assert [c["status"] for c in events[Topic.TWIN_READY][0]["context"]["baseline"]["results"]] == ["passed"] * 5
    assert await pipeline.runtime.list_ours(run_id) == []  # released by the janitor


async def test_a_patch_that_stops_a_checked_service_fails(pipeline: Pipeline) -> None:
    run_id = new_run_id("routers-fail")

    events = await pipeline.run(nginx_request(run_id, "service nginx stop", checks=CHECKS))

    [verdict] = events[Topic.VERDICT_ISSUED]
    assert verdict["status"] == "failed", verdict["summary"]
    after = {c["type"]: c["status"] for c in events[Topic.CHECKS_COMPLETED][0]["after"]["results"]}
    assert after == {"port": "failed", "service": "failed", "http": "failed", "process": "failed",
                     "package": "passed"}
    assert await pipeline.runtime.list_ours(run_id) == []


async def test_stage_outboxes_hold_every_event_published(pipeline: Pipeline, database: str) -> None:
    run_id = new_run_id("routers-outbox")

    await pipeline.run(nginx_request(run_id, "true", checks=CHECKS))

    connection = await asyncpg.connect(database)
    try:
        rows = await connection.fetch("SELECT topic, published_at IS NOT NULL AS sent FROM outbox WHERE run_id = $1",
                                      run_id)
    finally:
        await connection.close()
    assert sorted((r["topic"], r["sent"]) for r in rows) == sorted((t.value, True) for t in JOURNEY)
