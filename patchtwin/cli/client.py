"""A scanner's and a ticketing system's view: publish a request, follow it, read its verdict."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from patchtwin.core.bus import cloudevent_headers
from patchtwin.settings import Settings
from schemas import TwinRequested
from schemas.topics import Topic

#: The topics that show a run's progress, in pipeline order.
PROGRESS_TOPICS = (
    Topic.TWIN_REQUESTED,
    Topic.TWIN_READY,
    Topic.PATCH_APPLIED,
    Topic.CHECKS_COMPLETED,
    Topic.RUN_FAILED,
    Topic.VERDICT_ISSUED,
    Topic.TWIN_RELEASED,
)


@dataclass(frozen=True)
class RunEvent:
    topic: Topic
    run_id: str
    value: dict[str, Any]
    timestamp_ms: int


async def submit(settings: Settings, request: dict[str, Any]) -> str:
    """Validates locally (clear errors before anything is sent), publishes, returns the run id."""
    event = TwinRequested.model_validate(request)
    payload = dict(request)
    payload.setdefault("run_id", event.run_id)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        headers = cloudevent_headers(
            event_id=event.event_id, ce_type=TwinRequested.ce_type(), source="patchtwin/cli",
            run_id=event.run_id,
        )
        await producer.send_and_wait(
            settings.topic(Topic.TWIN_REQUESTED.value),
            json.dumps(payload).encode(),
            key=event.run_id.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()
    return event.run_id


def rerun_id(run_id: str) -> str:
    """A fresh run id that still reads as a repeat of `run_id` (within the 128-character limit)."""
    return f"{run_id[:100]}.rerun-{uuid.uuid4().hex[:8]}"


def rerun_request(original: dict[str, Any], inputs: dict[str, Any], *, run_id: str | None = None) -> dict[str, Any]:
    """The request that repeats a run: the original body (asset, patch, checks, repeats, ...) under a
    new run id, linked to the original by `rerun_of`, and every artifact pinned to the sha256 the
    original run recorded for it (`patch_runs.inputs`), so changed content is refused, not applied."""
    body = {k: v for k, v in original.items() if k not in {"event_id", "occurred_at", "run_id", "rerun_of"}}
    recorded = {item["path"]: item["sha256"] for item in inputs.get("artifacts", [])}
    patch = dict(body["patch"])
    patch["artifacts"] = [{**artifact, "sha256": recorded.get(artifact["path"], artifact.get("sha256"))}
                          for artifact in patch.get("artifacts", [])]
    body["patch"] = patch
    body["run_id"] = run_id or rerun_id(original["run_id"])
    body["rerun_of"] = original["run_id"]
    TwinRequested.model_validate(body)  # what the original passed must pass again
    return body


async def follow(
    settings: Settings, run_ids: set[str], *, timeout_s: float = 900, until_released: bool = False,
    settle_s: float = 0.0,
) -> AsyncIterator[RunEvent]:
    """Every event of the given runs, from the start of each topic, until each has its verdict
    (or its twin released). Reads by assignment, so no consumer group is joined or changed.

    Partitions of different topics arrive in no set order, so a verdict may be read before an
    event that preceded it; `settle_s` keeps reading that long after the last final event."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,  # a verdict shown when it comes, not up to 0.5 s later
    )
    await consumer.start()
    try:
        partitions = []
        for topic in PROGRESS_TOPICS:
            name = settings.topic(topic.value)
            for p in consumer.partitions_for_topic(name) or await _partitions(consumer, name):
                partitions.append(TopicPartition(name, p))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        by_name = {settings.topic(t.value): t for t in PROGRESS_TOPICS}
        final = Topic.TWIN_RELEASED if until_released else Topic.VERDICT_ISSUED
        waiting = set(run_ids)
        deadline = time.monotonic() + timeout_s
        settled_at: float | None = None
        while time.monotonic() < deadline:
            if not waiting:
                settled_at = settled_at or time.monotonic() + settle_s
                if time.monotonic() >= settled_at:
                    break
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    key = record.key.decode(errors="replace") if record.key else None
                    if key is not None and key not in run_ids:
                        continue  # someone else's run: not even decoded (it may be poison)
                    try:
                        value = json.loads(record.value)
                    except (TypeError, ValueError, RecursionError):
                        continue  # poison is the stages' concern; a watcher skips it
                    run_id = key or (value.get("run_id") if isinstance(value, dict) else None)
                    if run_id not in run_ids:
                        continue
                    topic = by_name[tp.topic]
                    yield RunEvent(topic, run_id, value, record.timestamp)
                    if topic is final:
                        waiting.discard(run_id)
        if waiting:
            raise TimeoutError(f"no verdict within {timeout_s:g}s for: {', '.join(sorted(waiting))}")
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} does not exist; is patchtwin running?")

