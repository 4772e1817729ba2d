"""A client outside the Python/aiokafka world: librdkafka (confluent-kafka) produces the
request and reads the verdict, as a Go or Java scanner would."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from tests.clients import new_run_id, nginx_request


def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value)  # no key, no headers: all the contract asks
    assert producer.flush(30) == 0


def _read_verdict(bootstrap: str, run_id: str, timeout_s: float) -> list[Any]:
    """With assign() (a subscribing consumer takes 5-25 s to join on Tansu, see FACTS.md)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ticketing-{run_id}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics("verdict.issued", timeout=10).topics["verdict.issued"]
        consumer.assign([TopicPartition("verdict.issued", p, 0) for p in partitions.partitions])
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not found:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.key() == run_id.encode():
                found.append(message)
        return found
    finally:
        consumer.close()


async def test_librdkafka_client_submits_and_reads_its_verdict(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("rdkafka")
    request = nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}])
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap

    await asyncio.to_thread(_produce, bootstrap, "twin.requested", json.dumps(request).encode())
    [message] = await asyncio.to_thread(_read_verdict, bootstrap, run_id, 120)

    verdict = json.loads(message.value())
    headers = {k: v.decode() for k, v in message.headers() or []}
    assert verdict["run_id"] == run_id
    assert verdict["status"] == "passed", verdict["summary"]
    assert headers["ce_type"] == "io.patchtwin.verdict.issued.v1"
    assert headers["ce_id"] == verdict["event_id"]
