from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.core.stage import Stage
from patchtwin.twins import Runtimes
from schemas import PatchApplied, Topic, TwinReady
from services.executor.logic import PatchRecord, apply_patch, interrupted, recorded_inputs, store_patch_run


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    router.publisher(stage.topic(Topic.PATCH_APPLIED), title="patch.applied", schema=PatchApplied)
    #: run id → what the attempt put into the twin and its whole output, until it is stored
    records: dict[str, PatchRecord] = {}

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
        async def work() -> PatchApplied:
            recorded = await recorded_inputs(stage.pool, request.rerun_of)
            return await apply_patch(ready, runtimes.for_twin(ready.context.twin), stage.settings, records,
                                     recorded=recorded)

        await stage.handle(
            ready,
            work,
            on_resume=lambda: interrupted(ready, stage),
            context=context,
            record=store_patch_run(records),
        )

    return router
