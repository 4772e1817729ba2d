from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.core.stage import Stage
from patchtwin.twins import Runtimes
from patchtwin.twins.capacity import TwinGate
from patchtwin.twins.runtime import LABEL_RUN
from schemas import Code, Topic, TwinReady, TwinRequested
from services.provisioner.logic import provision
from services.provisioner.request import request_key, run_deadline_s, with_assigned_ids


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    gate = twin_gate(stage, runtimes)
    router.publisher(stage.topic(Topic.TWIN_READY), title="twin.ready", schema=TwinReady)

    @router.subscriber(
        stage.topic(Topic.TWIN_REQUESTED),
        **stage.subscription(workers=stage.settings.stage_workers),
        title="twin.requested:provisioner",
    )
    async def on_twin_requested(message: KafkaMessage) -> None:
        request = await stage.receive(message, TwinRequested, prepare=with_assigned_ids)
        if request is None:
            return

        async def admitted() -> TwinReady:
            async with gate.admit(request.run_id):
                return await provision(request, runtimes.get(request.asset.runtime), stage.settings)

        async def duplicate() -> None:
            await stage.dead_letter(message, Code.DUPLICATE_RUN_ID,
                                    f"run {request.run_id} already exists with another body; this request was not run")

        await stage.handle(
            request,
            admitted,
            key=request_key(request),
            on_conflict=duplicate,
            deadline_s=run_deadline_s(request, stage.settings),
            context={"asset_id": request.asset.id, "patch_id": request.patch.id,
                     "keep_twin": request.keep_twin},
        )

    return router


def twin_gate(stage: Stage, runtimes: Runtimes) -> TwinGate:
    """Back-pressure on twins alive in every runtime, counted from the engines (twins outlive
    this handler)."""

    async def alive_runs() -> set[str]:
        return {
            twin["labels"].get(LABEL_RUN, twin["name"])
            for runtime in runtimes.all()
            for twin in await runtime.list_ours()
        }

    return TwinGate(stage.settings.twin_limit(), alive_runs)
