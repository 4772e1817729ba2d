from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.runtime import Runtimes
from patchtwin.stage import Stage
from schemas import PatchApplied, Topic, TwinReady
from services.executor.logic import apply_patch, interrupted


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    router.publisher(stage.topic(Topic.PATCH_APPLIED), title="patch.applied", schema=PatchApplied)

    @router.subscriber(
        stage.topic(Topic.TWIN_READY),
        **stage.subscription(workers=stage.settings.stage_workers),
        title="twin.ready:executor",
    )
    async def on_twin_ready(message: KafkaMessage) -> None:
        ready = await stage.receive(message, TwinReady)
        if ready is None:
            return
        request = ready.context.request
        context = {"asset_id": request.asset.id, "patch_id": request.patch.id,
                   "keep_twin": request.keep_twin, "timeline": ready.context.timeline}
        await stage.handle(
            ready,
            lambda: apply_patch(ready, runtimes.for_twin(ready.context.twin), stage.settings),
            on_resume=lambda: interrupted(ready, stage),
            context=context,
        )

    return router
