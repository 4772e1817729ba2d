from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.core.stage import Stage
from patchtwin.twins import Runtimes
from schemas import ChecksCompleted, PatchApplied, Topic
from services.prober.logic import probe


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    router.publisher(stage.topic(Topic.CHECKS_COMPLETED), title="checks.completed", schema=ChecksCompleted)

    @router.subscriber(
        stage.topic(Topic.PATCH_APPLIED),
        **stage.subscription(workers=stage.settings.stage_workers),
        title="patch.applied:prober",
    )
    async def on_patch_applied(message: KafkaMessage) -> None:
        applied = await stage.receive(message, PatchApplied)
        if applied is None:
            return
        request = applied.context.request
        context = {"asset_id": request.asset.id, "patch_id": request.patch.id,
                   "keep_twin": request.keep_twin, "timeline": applied.context.timeline}
        await stage.handle(applied, lambda: probe(applied, runtimes.for_twin(applied.context.twin)), context=context)

    return router
