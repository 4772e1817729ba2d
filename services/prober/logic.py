"""Run the same suite as the baseline, on the patched twin, with the same engine."""

from __future__ import annotations

from patchtwin.checks import run_suite
from patchtwin.core.stage import now
from patchtwin.twins import TwinRuntime
from schemas import ChecksCompleted, PatchApplied, StageSpan


async def probe(applied: PatchApplied, runtime: TwinRuntime) -> ChecksCompleted:
    """The baseline's log marks and figures come along, so logs count only what the patch added."""
    started = now()
    context = applied.context
    after = await run_suite(
        runtime,
        context.twin,
        context.request.checks,
        rounds=context.request.repeats,
        baseline=context.baseline,
    )
    span = StageSpan(stage="probe", started_at=started, finished_at=now())
    return ChecksCompleted(
        run_id=applied.run_id,
        context=context.model_copy(update={"timeline": [*context.timeline, span]}),
        outcome=applied.outcome,
        after=after,
    )
