"""Run the patch under a timeout and an output cap; record every way it can end."""

from __future__ import annotations

from patchtwin.runtime import TwinRuntime
from patchtwin.settings import Settings
from patchtwin.stage import Stage, now
from schemas import Code, PatchApplied, PatchOutcome, RunFailed, StageSpan, TwinReady

PATCH_PATH = "/opt/patchtwin/patch"


async def apply_patch(ready: TwinReady, runtime: TwinRuntime, settings: Settings) -> PatchApplied:
    started = now()
    context = ready.context
    patch = context.request.patch
    await runtime.put_file(context.twin, PATCH_PATH, patch.script.encode(), mode=0o700)
    result = await runtime.exec(
        context.twin,
        [patch.interpreter, PATCH_PATH],
        timeout_s=patch.timeout_s,
        output_cap=settings.patch_output_cap_bytes,
        grace_s=settings.patch_kill_grace_s,
    )
    outcome = PatchOutcome(
        exit_code=result.exit_code,
        duration_s=round(result.duration_s, 3),
        stdout=result.stdout.decode("utf-8", "replace"),
        stderr=result.stderr.decode("utf-8", "replace"),
        stdout_bytes=result.stdout_bytes,
        stderr_bytes=result.stderr_bytes,
        truncated=result.truncated,
        timed_out=result.timed_out,
    )
    span = StageSpan(stage="patch", started_at=started, finished_at=now())
    return PatchApplied(
        run_id=ready.run_id,
        context=context.model_copy(update={"timeline": [*context.timeline, span]}),
        outcome=outcome,
    )


async def interrupted(ready: TwinReady, stage: Stage) -> RunFailed:
    """An earlier attempt died mid-patch: the twin's state is unknown, so we don't judge it."""
    request = ready.context.request
    return stage.failure(
        ready,
        Code.PATCH_INTERRUPTED,
        "the executor stopped while the patch was running; the run is not judged",
        now(),
        context={"asset_id": request.asset.id, "patch_id": request.patch.id,
                 "keep_twin": request.keep_twin, "timeline": ready.context.timeline},
    )
