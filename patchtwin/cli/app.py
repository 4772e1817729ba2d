"""Assembles services into one running process: broker, pool, runtimes, routers, relays.

The composition root: the only module that knows every service, through `SERVICES`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker, KafkaRouter

import services.analyzer.router as analyzer
import services.executor.router as executor
import services.janitor.router as janitor
import services.prober.router as prober
import services.provisioner.router as provisioner
from patchtwin.core import store
from patchtwin.core.bus import make_broker
from patchtwin.core.stage import Stage
from patchtwin.observability import telemetry
from patchtwin.observability.http import Endpoints, default_port
from patchtwin.observability.samplers import Sampler
from patchtwin.settings import Settings
from patchtwin.twins import Runtimes
from schemas.events import RunFailed, TwinRequested
from schemas.stages import StageName
from schemas.topics import Topic

log = logging.getLogger("patchtwin.app")

RouterFactory = Callable[[Stage, Runtimes], KafkaRouter]
#: A service's own loops beside its handlers (the janitor's timers), each run as a task.
BackgroundFactory = Callable[[Stage, Runtimes], list[Callable[[], Coroutine[Any, Any, None]]]]


@dataclass(frozen=True)
class Service:
    """What the composition root needs of a service: its router, and its background loops."""

    build_router: RouterFactory
    background: BackgroundFactory | None = None


#: Every service, by name: the one registry the app, the CLI and the AsyncAPI document read.
SERVICES: dict[str, Service] = {
    StageName.PROVISIONER: Service(provisioner.build_router),
    StageName.EXECUTOR: Service(executor.build_router),
    StageName.PROBER: Service(prober.build_router),
    StageName.ANALYZER: Service(analyzer.build_router),
    StageName.JANITOR: Service(janitor.build_router, janitor.background),
}


async def ensure_topics(settings: Settings, partitions: int = 4) -> None:
    """Creates the contract's topics up front, so consumers never wait on auto-creation."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [settings.topic(t.value) for t in Topic if settings.topic(t.value) not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
    finally:
        await admin.close()


def shared_router(settings: Settings) -> KafkaRouter:
    """The publications of no one service, declared so the AsyncAPI document names them:
    requests come from clients (`patchtwin submit`, scanners), and any stage may fail a run
    (`Stage.handle`) or dead-letter a message (`Inbox.dead_letter`)."""
    router = KafkaRouter()
    router.publisher(
        settings.topic(Topic.TWIN_REQUESTED.value), title="twin.requested", schema=TwinRequested,
        description="A request to test a patch on a twin; published by clients (patchtwin submit, scanners).",
    )
    router.publisher(
        settings.topic(Topic.RUN_FAILED.value), title="run.failed", schema=RunFailed,
        description="A run that cannot go on, with its coded error; published by any stage.",
    )
    router.publisher(
        settings.topic(Topic.DLQ.value), title="patchtwin.dlq", schema=bytes,
        description="A message no run can take, as it came (truncated to PATCHTWIN_MAX_MESSAGE_BYTES), "
        "with why in its headers; published by any stage.",
    )
    return router


def include_routers(broker: KafkaBroker, stages: dict[str, Stage], runtimes: Runtimes) -> None:
    """Every service's router on one broker, and the shared publications."""
    for name, stage in stages.items():
        broker.include_router(SERVICES[name].build_router(stage, runtimes))
    settings = next(iter(stages.values())).settings
    broker.include_router(shared_router(settings))


def unknown_services(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name not in SERVICES]


@dataclass
class App:
    """One or more services sharing a process (all five under `patchtwin up`)."""

    settings: Settings
    services: tuple[str, ...] = tuple(SERVICES)
    broker: KafkaBroker | None = None
    pool: asyncpg.Pool | None = None
    runtimes: Runtimes | None = None
    stages: dict[str, Stage] = field(default_factory=dict)
    endpoints: Endpoints | None = None  # observe: /healthz /readyz /metrics
    sampler: Sampler | None = None  # observe: twins, their usage, consumer lag
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> App:
        if unknown := unknown_services(self.services):
            raise ValueError(f"unknown service {unknown[0]!r}; one of {', '.join(SERVICES)}")
        assert self.settings.database_url, "DATABASE_URL is not set"
        telemetry.setup(self.settings, "-".join(self.services))  # observe
        self.pool = await store.connect(self.settings.database_url)
        await store.migrate(self.pool)
        await ensure_topics(self.settings)
        self.runtimes = Runtimes.from_settings(self.settings)
        self.broker = make_broker(self.settings, client_id=f"patchtwin-{'-'.join(self.services)}")
        for name in self.services:
            self.stages[name] = Stage(name, pool=self.pool, broker=self.broker, settings=self.settings)
        include_routers(self.broker, self.stages, self.runtimes)
        await self.broker.start()
        for stage in self.stages.values():
            stage.start_relay()
        for name, stage in self.stages.items():
            background = SERVICES[name].background
            for loop in background(stage, self.runtimes) if background is not None else []:
                self._tasks.append(asyncio.create_task(loop()))
        await self._observe()
        return self

    @property
    def endpoint_record(self) -> Path:
        """Where this process's HTTP URL is recorded while it serves: `up.json` for all
        services in one process, else `NAME.json`."""
        name = "up" if set(self.services) == set(SERVICES) else "-".join(self.services)
        return self.settings.state_dir / "http" / f"{name}.json"

    async def _observe(self) -> None:
        """observe: this process's HTTP endpoint and metric samplers (issue 9)."""
        assert self.broker is not None and self.pool is not None and self.runtimes is not None
        broker, pool, runtimes = self.broker, self.pool, self.runtimes.all()

        async def database() -> bool:
            return await pool.fetchval("SELECT 1") == 1

        async def kafka() -> bool:
            return await broker.ping(timeout=2)

        checks = {"kafka": kafka, "database": database}
        if set(self.services) - {StageName.ANALYZER}:  # the services that handle twins need their runtimes
            checks.update({runtime.name: runtime.ping for runtime in runtimes})
        port = self.settings.http_port
        port = default_port(self.services) if port is None else port
        if port >= 0:
            self.endpoints = await Endpoints(
                self.settings.http_host, port, self.services, checks, record=self.endpoint_record
            ).start()
        groups: dict[str, list[str]] = {}
        for subscriber in broker.subscribers:
            group = getattr(subscriber, "group_id", None)
            if group:
                groups.setdefault(group, []).extend(getattr(subscriber, "topic_names", []))
        twins = runtimes if StageName.JANITOR in self.services else []
        self.sampler = Sampler(self.settings, twins, groups).start()

    async def stop(self) -> None:
        if self.endpoints is not None:  # observe
            await self.endpoints.stop()
        if self.sampler is not None:  # observe
            await self.sampler.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for stage in self.stages.values():
            await stage.stop_relay()
        if self.broker is not None:
            await self.broker.stop()
        if self.runtimes is not None:
            await self.runtimes.close()
        if self.pool is not None:
            await self.pool.close()
