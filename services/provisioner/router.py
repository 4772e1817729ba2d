from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.runtime import Runtimes
from patchtwin.stage import Stage
from schemas import Topic, TwinReady, TwinRequested
from services.provisioner.logic import provision


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    router.publisher(stage.topic(Topic.TWIN_READY), title="twin.ready", schema=TwinReady)

    @router.subscriber(
        stage.topic(Topic.TWIN_REQUESTED),
        **stage.subscription(),
        title="twin.requested:provisioner",
    )
    async def on_twin_requested(message: KafkaMessage) -> None:
        request = await stage.receive(message, TwinRequested)
        if request is None:
            return
        await stage.handle(
            request,
            lambda: provision(request, runtimes.get(request.asset.runtime), stage.settings),
            context={"asset_id": request.asset.id, "patch_id": request.patch.id,
                     "keep_twin": request.keep_twin},
        )

    return router
