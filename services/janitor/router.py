from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.runtime import DockerRuntime
from patchtwin.stage import Stage
from schemas import Topic, TwinReleased, VerdictIssued
from services.janitor.logic import release, remember_release


def build_router(stage: Stage, runtime: DockerRuntime) -> KafkaRouter:
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
            verdict, lambda: release(verdict, runtime), key=verdict.run_id, record=remember_release
        )

    return router
