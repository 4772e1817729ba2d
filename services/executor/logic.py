"""Run the patch under a timeout and an output cap; record every way it can end.

A patch is applied in steps — artifacts copied in, packages installed offline, the script
run — and the outcome is the ending of the last step that ran. What ran, and everything it
wrote up to the cap, is recorded in `patch_runs`, so a run can be read back and repeated.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from patchtwin import snapshot
from patchtwin.exceptions import InvalidRequest
from patchtwin.runtime import ExecResult, TwinRuntime
from patchtwin.runtime.base import CUT_MARKER
from patchtwin.settings import Settings
from patchtwin.stage import Stage, now
from schemas import Code, Event, PatchApplied, PatchOutcome, RunFailed, StageSpan, TwinReady
from schemas.events import PatchStep

PATCH_PATH = "/opt/patchtwin/patch"


@dataclass
class PatchRecord:
    """What the executor keeps of a run beyond its event: the whole capped output and what
    exactly was put into the twin (stored in `patch_runs`)."""

    run_id: str
    patch: dict[str, Any]
    stdout: bytes = b""
    stderr: bytes = b""
    inputs: dict[str, Any] = field(default_factory=dict)


async def apply_patch(
    ready: TwinReady, runtime: TwinRuntime, settings: Settings, records: dict[str, PatchRecord] | None = None
) -> PatchApplied:
    started = now()
    context = ready.context
    patch = context.request.patch
    record = PatchRecord(run_id=ready.run_id, patch=patch.model_dump(mode="json"))
    if records is not None:
        records[ready.run_id] = record
    if patch.packages or patch.artifacts:
        raise InvalidRequest("patch.packages and patch.artifacts are not applied by this executor yet")
    result: ExecResult | None = None
    if patch.script.strip():
        await runtime.put_file(context.twin, PATCH_PATH, patch.script.encode(), mode=0o755 if patch.user else 0o700)
        result = await runtime.run_supervised(
            context.twin,
            [patch.interpreter, PATCH_PATH],
            timeout_s=patch.timeout_s,
            output_cap=settings.patch_output_cap_bytes,
            user=patch.user or "",
            grace_s=settings.patch_kill_grace_s,
        )
    outcome = outcome_of(result, settings, step="script", user=patch.user)
    if result is not None:
        record.stdout, record.stderr = result.stdout, result.stderr
    # faithful twins: snapshot again and record what the patch changed (None without a baseline)
    outcome.state_diff = await snapshot.diff_after(runtime, context, settings)
    span = StageSpan(stage="patch", started_at=started, finished_at=now())
    return PatchApplied(
        run_id=ready.run_id,
        context=context.model_copy(update={"timeline": [*context.timeline, span]}),
        outcome=outcome,
    )


def outcome_of(result: ExecResult | None, settings: Settings, *, step: PatchStep, user: str | None) -> PatchOutcome:
    """The event's account of an ending: exact fields, output cut to the event's share."""
    if result is None:  # nothing to run in this step: an ending with nothing wrong
        return PatchOutcome(exit_code=0, duration_s=0.0, step=step, user=user)
    limit = settings.patch_output_event_bytes
    return PatchOutcome(
        exit_code=result.exit_code,
        signal=result.signal,
        duration_s=round(result.duration_s, 3),
        stdout=excerpt(result.stdout, limit).decode("utf-8", "replace"),
        stderr=excerpt(result.stderr, limit).decode("utf-8", "replace"),
        stdout_bytes=result.stdout_bytes,
        stderr_bytes=result.stderr_bytes,
        truncated=result.truncated,
        timed_out=result.timed_out,
        oom_killed=result.oom_killed,
        abandoned=result.abandoned,
        observed_by=result.observed_by,
        step=step,
        user=user,
    )


def excerpt(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes for the event (head and tail); the store keeps up to the cap."""
    if len(data) <= limit:
        return data
    half = max(limit // 2, 0)
    return data[: limit - half] + CUT_MARKER + (data[-half:] if half else b"")


def store_patch_run(records: dict[str, PatchRecord]) -> Callable[[Event], Callable[[asyncpg.Connection],
                                                                                     Awaitable[None]] | None]:
    """Writes the run's patch record in the ledger's transaction (see `PatchRecord`)."""

    def for_event(event: Event) -> Callable[[asyncpg.Connection], Awaitable[None]] | None:
        record = records.pop(event.run_id, None)
        if record is None:
            return None
        outcome = event.outcome.model_dump(mode="json") if isinstance(event, PatchApplied) else None

        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO patch_runs (run_id, patch, inputs, outcome, stdout, stderr) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING",
                record.run_id, json.dumps(record.patch), json.dumps(record.inputs),
                json.dumps(outcome) if outcome is not None else None, record.stdout, record.stderr,
            )

        return write

    return for_event


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
