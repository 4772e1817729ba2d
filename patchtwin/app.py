"""Assembles services into one running process: broker, pool, runtime, routers, relays."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker, KafkaRouter

from patchtwin import store, telemetry
from patchtwin.bus import make_broker
from patchtwin.http import Endpoints
from patchtwin.runtime import DockerRuntime, Runtimes
from patchtwin.samplers import Sampler
from patchtwin.settings import Settings
from patchtwin.stage import Stage
from schemas.events import RunFailed, TwinRequested
from schemas.topics import Topic

SERVICES = ("provisioner", "executor", "prober", "analyzer", "janitor")
log = logging.getLogger("patchtwin.app")


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


def _router_for(name: str, stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    if name == "provisioner":
        from services.provisioner.router import build_router

        return build_router(stage, runtimes)
    if name == "executor":
        from services.executor.router import build_router as build_executor

        return build_executor(stage, runtimes)
    if name == "prober":
        from services.prober.router import build_router as build_prober

        return build_prober(stage, runtimes)
    if name == "analyzer":
        from services.analyzer.router import build_router as build_analyzer

        return build_analyzer(stage)
    if name == "janitor":
        from services.janitor.router import build_router as build_janitor

        return build_janitor(stage, runtimes)
    raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")


def shared_router(settings: Settings) -> KafkaRouter:
    """The publications of no one service, declared so the AsyncAPI document names them:
    requests come from clients (`patchtwin submit`, scanners), and any stage may fail a run
    (`Stage.handle`) or dead-letter a message (`Stage.dead_letter`)."""
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
        broker.include_router(_router_for(name, stage, runtimes))
    settings = next(iter(stages.values())).settings
    broker.include_router(shared_router(settings))


@dataclass
class App:
    """One or more services sharing a process (all five under `patchtwin up`)."""

    settings: Settings
    services: tuple[str, ...] = SERVICES
    broker: KafkaBroker | None = None
    pool: asyncpg.Pool | None = None
    runtime: DockerRuntime | None = None
    runtimes: Runtimes | None = None
    stages: dict[str, Stage] = field(default_factory=dict)
    endpoints: Endpoints | None = None  # observe: /healthz /readyz /metrics
    sampler: Sampler | None = None  # observe: twins, their usage, consumer lag
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> App:
        for name in self.services:
            if name not in SERVICES:
                raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        assert self.settings.database_url, "DATABASE_URL is not set"
        telemetry.setup(self.settings, "-".join(self.services))  # observe
        self.pool = await store.connect(self.settings.database_url)
        await store.migrate(self.pool)
        await ensure_topics(self.settings)
        self.runtimes = Runtimes.from_settings(self.settings)
        docker = next((r for r in self.runtimes.all() if isinstance(r, DockerRuntime)), None)
        self.runtime = docker
        self.broker = make_broker(self.settings, client_id=f"patchtwin-{'-'.join(self.services)}")
        for name in self.services:
            self.stages[name] = Stage(name, pool=self.pool, broker=self.broker, settings=self.settings)
        include_routers(self.broker, self.stages, self.runtimes)
        await self.broker.start()
        for stage in self.stages.values():
            stage.start_relay()
        if "janitor" in self.services:
            self._tasks.append(asyncio.create_task(self._sweep_forever()))
            if self.settings.janitor_docker_events and self.runtime is not None:
                self._tasks.append(asyncio.create_task(self._follow_docker_events(self.runtime)))
        await self._observe()
        return self

    async def _follow_docker_events(self, runtime: DockerRuntime) -> None:
        """The janitor's Docker event subscription, re-opened whenever the stream ends."""
        from services.janitor.logic import react_to_docker_events

        assert self.pool is not None
        while True:
            try:
                await react_to_docker_events(runtime, self.pool, orphan_grace_s=self.settings.janitor_orphan_grace_s)
            except Exception:
                log.warning("janitor: Docker events stream failed", exc_info=True)
            await asyncio.sleep(self.settings.janitor_interval_s)

    async def _observe(self) -> None:
        """observe: this process's HTTP endpoint and metric samplers (issue 9)."""
        assert self.broker is not None and self.pool is not None and self.runtimes is not None
        broker, pool, runtimes = self.broker, self.pool, self.runtimes.all()

        async def database() -> bool:
            return await pool.fetchval("SELECT 1") == 1

        async def kafka() -> bool:
            return await broker.ping(timeout=2)

        checks = {"kafka": kafka, "database": database}
        if set(self.services) - {"analyzer"}:  # the services that handle twins need their runtimes
            checks.update({runtime.name: runtime.ping for runtime in runtimes})
        if self.settings.http_port >= 0:
            self.endpoints = await Endpoints(
                self.settings.http_host, self.settings.http_port, self.services, checks
            ).start()
        groups: dict[str, list[str]] = {}
        for subscriber in broker.subscribers:
            group = getattr(subscriber, "group_id", None)
            if group:
                groups.setdefault(group, []).extend(getattr(subscriber, "topic_names", []))
        twins = runtimes if "janitor" in self.services else []
        self.sampler = Sampler(self.settings, twins, groups).start()

    async def _sweep_forever(self) -> None:
        """The janitor's timers: at start and then every interval, fail runs past their
        deadline (watchdog) and remove twins no run needs (sweep)."""
        from services.janitor.logic import sweep, watchdog

        assert self.runtimes is not None and self.pool is not None
        while True:
            try:
                await watchdog(self.stages["janitor"])
            except Exception:
                log.warning("janitor watchdog failed", exc_info=True)
            try:
                await sweep(self.runtimes, self.pool, orphan_grace_s=self.settings.janitor_orphan_grace_s)
            except Exception:
                log.warning("janitor sweep failed", exc_info=True)
            await asyncio.sleep(self.settings.janitor_interval_s)

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
