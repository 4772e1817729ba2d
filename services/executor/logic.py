"""Run the patch under a timeout and an output cap; record every way it can end.

A patch is applied in steps — artifacts copied in, packages installed offline, the script
run — and the outcome is the ending of the last step that ran. What ran, and everything it
wrote up to the cap, is recorded in `patch_runs`, so a run can be read back and repeated.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from patchtwin.core import store
from patchtwin.core.stage import Stage, now
from patchtwin.exceptions import InvalidRequest
from patchtwin.settings import Settings
from patchtwin.twins import ExecResult, TwinRuntime, snapshot
from patchtwin.twins.runtime import CUT_MARKER
from schemas import Code, Event, PatchApplied, PatchOutcome, RunContext, RunFailed, StageSpan, TwinReady
from schemas.events import PackageChange, PatchStep
from services.executor.inputs import fetch_artifacts, fetch_packages, verify_rerun

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
    ready: TwinReady, runtime: TwinRuntime, settings: Settings, records: dict[str, PatchRecord] | None = None,
    *, recorded: dict[str, Any] | None = None,
) -> PatchApplied:
    """Artifacts copied in, packages installed offline, the script run; the first step that
    ends badly ends the patch. Fetching happens outside the twin, before anything changes.

    `recorded`: for a rerun, the inputs the original run recorded; what was fetched must be
    the same bytes, checked before anything goes into the twin (else RERUN_INPUT_CHANGED)."""
    started = now()
    context = ready.context
    patch = context.request.patch
    record = PatchRecord(run_id=ready.run_id, patch=patch.model_dump(mode="json"))
    if records is not None:
        records[ready.run_id] = record
    rerun_of = context.request.rerun_of
    artifacts = await fetch_artifacts(patch.artifacts, settings, rerun_of=rerun_of)
    debs = await fetch_packages(patch.packages, context.twin.image, ready.run_id, runtime, settings) \
        if patch.packages else []
    record.inputs = {"artifacts": [a.record() for a in artifacts], "packages": [d.record() for d in debs]}
    if recorded is not None and rerun_of is not None:
        verify_rerun(recorded, record.inputs, rerun_of)
    # the record keeps what a repeat needs: URL artifacts pinned to what was fetched
    record.patch["artifacts"] = [
        {"path": a.path, "content_base64": base64.b64encode(a.content).decode(), "mode": a.mode,
         "sha256": a.sha256, **({"url": a.source} if a.source != "inline" else {})}
        for a in artifacts
    ]
    if artifacts:
        await runtime.put_files(context.twin, [(a.path, a.content, a.mode) for a in artifacts])
    step: PatchStep = "artifacts"
    result: ExecResult | None = None
    # the timeout covers the steps that run in the twin (install and script), not our copies
    deadline: float | None = None
    stdout, stderr = b"", b""
    packages: list[PackageChange] = []
    if debs:
        step = "packages"
        await runtime.put_files(context.twin, [(d.path, d.content, d.mode) for d in debs])
        names = sorted(name.split(":")[0] for name in patch.packages)
        before = await installed_versions(runtime, context, names)
        deadline = time.monotonic() + patch.timeout_s
        result = await runtime.run_supervised(
            context.twin, ["sh", "-c", _INSTALL, "install", *(d.path for d in debs)],
            timeout_s=patch.timeout_s, output_cap=settings.patch_output_cap_bytes, grace_s=settings.patch_kill_grace_s,
        )
        stdout, stderr = result.stdout, result.stderr
        after = await installed_versions(runtime, context, names) if result.exit_code is not None else {}
        packages = [PackageChange(name=name, requested=patch.packages.get(name, ""), before=before.get(name),
                                  after=after.get(name)) for name in names]
    if patch.script.strip() and (result is None or _ended_well(result)):
        step = "script"
        result = await runtime.run_supervised(
            context.twin,
            [patch.interpreter, PATCH_PATH],
            timeout_s=patch.timeout_s if deadline is None else max(deadline - time.monotonic(), 0.01),
            output_cap=settings.patch_output_cap_bytes,
            user=patch.user or "",
            grace_s=settings.patch_kill_grace_s,
            files=[(PATCH_PATH, patch.script.encode(), 0o755 if patch.user else 0o700)],
        )
        stdout, stderr = stdout + result.stdout, stderr + result.stderr
    outcome = outcome_of(result, settings, step=step, user=patch.user)
    if deadline is not None:  # packages and script: the duration of both
        outcome = outcome.model_copy(update={"packages": packages,
                                             "duration_s": round(time.monotonic() - deadline + patch.timeout_s, 3)})
    record.stdout, record.stderr = stdout, stderr
    # faithful twins: snapshot again and record what the patch changed (None without a baseline)
    outcome.state_diff = await snapshot.diff_after(runtime, context, settings)
    span = StageSpan(stage="patch", started_at=started, finished_at=now())
    return PatchApplied(
        run_id=ready.run_id,
        context=context.model_copy(update={"timeline": [*context.timeline, span]}),
        outcome=outcome,
    )


async def recorded_inputs(pool: asyncpg.Pool, rerun_of: str | None) -> dict[str, Any] | None:
    """For a rerun, what the original run's patch put into the twin (`patch_runs.inputs`)."""
    if rerun_of is None:
        return None
    original = await store.load_patch_run(pool, rerun_of)
    if original is None or original.outcome is None:
        raise InvalidRequest(f"rerun_of: run {rerun_of} has no applied patch on record, so there is nothing "
                             "to repeat exactly")
    return original.inputs


#: dpkg, offline: the .debs are all there (the helper downloaded the missing dependencies).
_INSTALL = 'export DEBIAN_FRONTEND=noninteractive; dpkg -i "$@"; rc=$?; rm -f "$@"; exit $rc'


def _ended_well(result: ExecResult) -> bool:
    return result.exit_code == 0 and not (result.timed_out or result.oom_killed or result.abandoned)


async def installed_versions(runtime: TwinRuntime, context: RunContext, names: list[str]) -> dict[str, str]:
    """name → installed version, for the names that are installed."""
    script = 'dpkg-query -W -f \'${Package}\t${Version}\t${db:Status-Abbrev}\n\' "$@" 2>/dev/null; exit 0'
    result = await runtime.exec(context.twin, ["sh", "-c", script, "versions", *names], timeout_s=30)
    versions = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[1] and fields[2].startswith("ii"):
            versions[fields[0]] = fields[1]
    return versions


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
