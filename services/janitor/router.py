import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.core.stage import Stage
from patchtwin.twins import DockerRuntime, Runtimes
from schemas import Topic, TwinReleased, VerdictIssued
from services.janitor.logic import react_to_docker_events, release, sweep, watchdog

log = logging.getLogger("patchtwin.janitor")


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    router.publisher(stage.topic(Topic.TWIN_RELEASED), title="twin.released", schema=TwinReleased)

    @router.subscriber(
        stage.topic(Topic.VERDICT_ISSUED),
        **stage.subscription(),
        title="verdict.issued:janitor",
    )
    async def on_verdict_issued(message: KafkaMessage) -> None:
        verdict = await stage.receive(message, VerdictIssued)
        if verdict is None:
            return
        await stage.handle(verdict, lambda: release(verdict, runtimes), key=verdict.run_id)

    return router


def background(stage: Stage, runtimes: Runtimes) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """The janitor's timers: the watchdog and the sweep every interval, and the Docker engine's
    events followed, so a twin no run needs goes as soon as it stops."""
    settings = stage.settings

    async def sweep_forever() -> None:
        while True:
            try:
                await watchdog(stage)
            except Exception:
                log.warning("janitor watchdog failed", exc_info=True)
            try:
                await sweep(runtimes, stage.pool, orphan_grace_s=settings.janitor_orphan_grace_s)
            except Exception:
                log.warning("janitor sweep failed", exc_info=True)
            await asyncio.sleep(settings.janitor_interval_s)

    async def follow_docker_events(docker: DockerRuntime) -> None:
        while True:  # re-opened whenever the stream ends
            try:
                await react_to_docker_events(docker, stage.pool, orphan_grace_s=settings.janitor_orphan_grace_s)
            except Exception:
                log.warning("janitor: Docker events stream failed", exc_info=True)
            await asyncio.sleep(settings.janitor_interval_s)

    loops: list[Callable[[], Coroutine[Any, Any, None]]] = [sweep_forever]
    docker = next((r for r in runtimes.all() if isinstance(r, DockerRuntime)), None)
    if settings.janitor_docker_events and docker is not None:
        loops.append(lambda: follow_docker_events(docker))
    return loops
