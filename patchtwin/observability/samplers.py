"""Metrics that are sampled rather than counted: twins alive, their CPU and memory, consumer lag.

Why a background task: asking Docker for container stats or Kafka for offsets takes
round trips (a stats sample waits for the engine), so a task refreshes one snapshot every
`metrics_interval_s` and the scrape of `/metrics` only reads it, never waits on I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from patchtwin.twins.docker import LABEL_RUN
from patchtwin.twins.runtime import TwinRuntime

log = logging.getLogger("patchtwin.samplers")


@dataclass
class Snapshot:
    #: runtime name -> its twins of this instance, running or not
    twins_alive: dict[str, int] = field(default_factory=dict)
    #: run id -> (memory bytes, cpu seconds used so far)
    twin_usage: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: (group, topic) -> messages not yet consumed by that group
    lag: dict[tuple[str, str], int] = field(default_factory=dict)


#: What every process reports: the latest snapshot of each sampler started in it.
_SAMPLERS: list[Sampler] = []


def _observe(pick: Any) -> Any:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [obs for sampler in list(_SAMPLERS) for obs in pick(sampler.snapshot)]

    return callback


_meter = metrics.get_meter("patchtwin")
_meter.create_observable_gauge(
    "patchtwin.twins.alive",
    callbacks=[_observe(lambda s: [Observation(n, {"runtime": r}) for r, n in s.twins_alive.items()])],
    description="Twins of this instance, running or not, by runtime.",
)
_meter.create_observable_gauge(
    "patchtwin.twin.memory",
    unit="By",
    callbacks=[_observe(lambda s: [Observation(m, {"run_id": r}) for r, (m, _) in s.twin_usage.items()])],
    description="Memory used by each running Docker twin.",
)
_meter.create_observable_counter(
    "patchtwin.twin.cpu",
    unit="s",
    callbacks=[_observe(lambda s: [Observation(c, {"run_id": r}) for r, (_, c) in s.twin_usage.items()])],
    description="CPU time used by each running Docker twin since it started.",
)
_meter.create_observable_gauge(
    "patchtwin.consumer.lag",
    callbacks=[_observe(lambda s: [Observation(n, {"group": g, "topic": t}) for (g, t), n in s.lag.items()])],
    description="Messages on a topic that a stage's consumer group has not yet committed.",
)


class Sampler:
    """Refreshes the snapshot: twins (of the runtimes given: where the janitor runs), lag of groups."""

    def __init__(self, settings: Settings, runtimes: list[TwinRuntime], groups: dict[str, list[str]]) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self.groups = groups
        self.snapshot = Snapshot()
        self._task: asyncio.Task[None] | None = None
        self._consumers: dict[str, AIOKafkaConsumer] = {}

    def start(self) -> Sampler:
        _SAMPLERS.append(self)
        self._task = asyncio.create_task(self._forever())
        return self

    async def stop(self) -> None:
        if self in _SAMPLERS:
            _SAMPLERS.remove(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for consumer in self._consumers.values():
            with contextlib.suppress(Exception):
                await consumer.stop()
        self._consumers.clear()

    async def _forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.settings.metrics_interval_s)

    async def refresh(self) -> Snapshot:
        """Takes a new snapshot; a part that fails keeps its last value (and is logged)."""
        snapshot = Snapshot(dict(self.snapshot.twins_alive), dict(self.snapshot.twin_usage), dict(self.snapshot.lag))
        for runtime in self.runtimes:
            try:
                if isinstance(runtime, DockerRuntime):
                    snapshot.twins_alive[runtime.name], snapshot.twin_usage = await twin_usage(runtime)
                else:
                    snapshot.twins_alive[runtime.name] = len(await runtime.list_ours())
            except Exception:
                log.warning("sampling the twins of %s failed", runtime.name, exc_info=True)
        for group, topics in self.groups.items():
            try:
                for topic, lag in (await consumer_lag(await self._consumer(group), topics)).items():
                    snapshot.lag[(group, topic)] = lag
            except Exception:
                log.warning("sampling the lag of %s failed", group, exc_info=True)
        self.snapshot = snapshot
        return snapshot

    async def _consumer(self, group: str) -> AIOKafkaConsumer:
        if group not in self._consumers:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            self._consumers[group] = consumer
        return self._consumers[group]


async def twin_usage(runtime: DockerRuntime) -> tuple[int, dict[str, tuple[int, float]]]:
    """How many twins exist, and memory and CPU of each running one (one stats call each)."""
    twins = await runtime.list_ours()
    running = [t for t in twins if t["state"] == "running"]

    async def one(twin: dict[str, Any]) -> tuple[str, tuple[int, float]] | None:
        try:
            memory, cpu_s = await runtime.usage(twin["id"])
        except Exception:
            # removed or stopped between the listing and the stats: nothing to measure
            log.debug("no stats for twin %s", twin["name"], exc_info=True)
            return None
        return twin["labels"].get(LABEL_RUN, twin["name"]), (memory, cpu_s)

    usage = [u for u in await asyncio.gather(*(one(t) for t in running)) if u is not None]
    return len(twins), dict(usage)


async def consumer_lag(consumer: AIOKafkaConsumer, topics: list[str]) -> dict[str, int]:
    """End offset minus committed offset per topic, summed over partitions, for the group of
    `consumer` (a consumer that never subscribes, so it never joins or disturbs the group)."""
    await consumer.topics()  # fetches the metadata of every topic
    partitions = [TopicPartition(topic, p) for topic in topics for p in consumer.partitions_for_topic(topic) or ()]
    if not partitions:
        return {}
    ends = await consumer.end_offsets(partitions)
    lag: dict[str, int] = {}
    for tp in partitions:
        committed = await consumer.committed(tp)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(ends[tp] - (committed or 0), 0)
    return lag
