"""Twins end with their run, or at their expiry, whatever crashed in between."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import asyncpg

from patchtwin.core.outbox import OutboxRecord
from patchtwin.core.stage import Stage
from patchtwin.twins import DockerRuntime, Runtimes, TwinRuntime
from patchtwin.twins.runtime import LABEL_CREATED, LABEL_EXPIRES, LABEL_RUN
from schemas import Code, RunFailed, StageName, TwinReleased, VerdictIssued

_DEADLINE_IDS = uuid.UUID("6f0c3e52-7a1d-4a8e-9a57-1d2f8b0c4e11")
#: The stages a run can be stuck in when the watchdog fails it (the janitor comes after the verdict).
_STAGES = [stage.value for stage in StageName if stage is not StageName.JANITOR]

log = logging.getLogger("patchtwin.janitor")


async def release(verdict: VerdictIssued, runtimes: Runtimes | TwinRuntime) -> TwinReleased:
    """Every runtime is asked: the verdict does not say where the twin ran."""
    every = Runtimes.wrap(runtimes).all()
    if verdict.keep_twin:
        kept = [c["name"] for runtime in every for c in await runtime.list_ours(verdict.run_id)]
        return TwinReleased(run_id=verdict.run_id, twins=kept, reason="kept on request", kept=True)
    removed = [name for runtime in every for name in await runtime.destroy_run(verdict.run_id)]
    return TwinReleased(run_id=verdict.run_id, twins=removed, reason=f"verdict {verdict.status.value}")


async def sweep(runtimes: Runtimes | TwinRuntime, pool: asyncpg.Pool, *, orphan_grace_s: float) -> list[str]:
    """Removes, in every runtime, this instance's twins that no run needs any more (see
    `why_remove`).

    Only twins carrying the runtime's owner and instance labels are ever looked at, so a
    janitor never touches another deployment's or test session's twins on a shared engine."""
    removed = []
    for runtime in Runtimes.wrap(runtimes).all():
        removed += await _sweep_one(runtime, pool, orphan_grace_s)
    return removed


async def _sweep_one(runtime: TwinRuntime, pool: asyncpg.Pool, orphan_grace_s: float) -> list[str]:
    removed = []
    now = datetime.now(UTC)
    for twin in await runtime.list_ours():
        reason = await why_remove(pool, twin["labels"], now, orphan_grace_s)
        if reason is None:
            continue
        await runtime.destroy(twin["name"])
        removed.append(twin["name"])
        log.info("janitor removed %s (%s)", twin["name"], reason)
    return removed


async def why_remove(
    pool: asyncpg.Pool, labels: dict[str, str], now: datetime, orphan_grace_s: float
) -> str | None:
    """Why a twin should go, or None while a run may still need it.

    - past its expiry (the request's `ttl_s`): always, kept or not;
    - its run has a verdict and the request did not ask to keep the twin (left behind by a
      crash between the verdict and the release, or a run that failed after provisioning);
    - its run is unknown to this instance's database, once older than `orphan_grace_s`
      (the provisioner records a run before it creates its twin, so only a lost database or
      a twin made by hand gets here; the grace spares twins made directly by tools and tests).
    """
    if _expired(labels.get(LABEL_EXPIRES), now):
        return "expired"
    run_id = labels.get(LABEL_RUN, "")
    row = await pool.fetchrow(
        "SELECT p.run_id IS NOT NULL AS known, v.run_id IS NOT NULL AS judged, "
        "coalesce((v.verdict->>'keep_twin')::boolean, false) AS keep "
        "FROM (SELECT $1::text AS run_id) r "
        "LEFT JOIN stage_runs p ON p.stage = $2 AND p.run_id = r.run_id "
        "LEFT JOIN verdicts v ON v.run_id = r.run_id",
        run_id, StageName.PROVISIONER,
    )
    assert row is not None
    if row["judged"]:
        return None if row["keep"] else "run finished"
    if not row["known"] and _older_than(labels.get(LABEL_CREATED), now, orphan_grace_s):
        return "run unknown"
    return None


async def watchdog(stage: Stage) -> list[str]:
    """Fails every run past its deadline that has no verdict: one RunFailed
    RUN_DEADLINE_EXCEEDED each, which the analyzer turns into the run's one `error` verdict.

    The event's id is derived from the run id and stored in the outbox before it is sent, so
    a janitor that runs this again (or a second janitor) never makes a different event."""
    overdue = await stage.pool.fetch(
        "SELECT p.run_id, p.started_at, p.deadline_at FROM stage_runs p "
        "WHERE p.stage = $1 AND p.deadline_at < now() "
        "AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.run_id = p.run_id) "
        "ORDER BY p.deadline_at LIMIT 100",
        StageName.PROVISIONER,
    )
    failed = []
    for row in overdue:
        run_id = row["run_id"]
        event_id = str(uuid.uuid5(_DEADLINE_IDS, run_id))
        if await stage.pool.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE event_id = $1)", event_id):
            continue  # already failed; the analyzer has it or the relay will send it
        working = {r["stage"] for r in await stage.pool.fetch(
            "SELECT stage FROM stage_runs WHERE run_id = $1 AND status = 'working'", run_id)}
        stuck = [name for name in _STAGES if name in working]
        event = RunFailed(
            event_id=event_id,
            run_id=run_id,
            stage=StageName.JANITOR,
            code=Code.RUN_DEADLINE_EXCEEDED,
            message=f"no verdict by the run's deadline {row['deadline_at'].isoformat()} "
            f"(requested {row['started_at'].isoformat()}); still working: {', '.join(stuck) or 'none'}",
            retryable=True,
            details={"stuck_in": stuck},
        )
        record = OutboxRecord.of(event, stage.source)
        async with stage.pool.acquire() as conn:
            await record.insert(conn)
        log.warning("watchdog: run %s is past its deadline (stuck in %s)", run_id, stuck or "none")
        await stage.publish(record)
        failed.append(run_id)
    return failed


async def react_to_docker_events(runtime: DockerRuntime, pool: asyncpg.Pool, *, orphan_grace_s: float) -> None:
    """Removes a twin as soon as it stops or dies when no run needs it (the same rules as
    `sweep`), instead of at the next sweep."""
    async for labels in runtime.events():
        reason = await why_remove(pool, labels, datetime.now(UTC), orphan_grace_s)
        if reason is not None and labels.get("name"):
            await runtime.destroy(labels["name"])
            log.info("janitor removed %s on a Docker event (%s)", labels["name"], reason)


def _older_than(stamp: str | None, now: datetime, seconds: float) -> bool:
    try:
        return stamp is None or (now - datetime.fromisoformat(stamp)).total_seconds() >= seconds
    except ValueError:
        return True


def _expired(stamp: str | None, now: datetime) -> bool:
    if not stamp:
        return True  # ours but unlabelled: no run can claim it
    try:
        return datetime.fromisoformat(stamp) <= now
    except ValueError:
        return True
