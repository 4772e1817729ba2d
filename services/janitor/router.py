from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.runtime import Runtimes
from patchtwin.stage import Stage
from schemas import Topic, TwinReleased, VerdictIssued
from services.janitor.logic import release, remember_release


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
        await stage.handle(
            verdict, lambda: release(verdict, runtimes), key=verdict.run_id, record=remember_release
        )

    return router
