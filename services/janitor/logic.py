"""Twins end with their run, or at their expiry, whatever crashed in between."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import asyncpg

from patchtwin.runtime import Runtimes, TwinRuntime
from patchtwin.runtime.base import LABEL_EXPIRES, LABEL_RUN
from schemas import TwinReleased, VerdictIssued

log = logging.getLogger("patchtwin.janitor")


async def release(verdict: VerdictIssued, runtimes: Runtimes | TwinRuntime) -> TwinReleased:
    """Every runtime is asked: the verdict does not say where the twin ran."""
    every = Runtimes.wrap(runtimes).all()
    if verdict.keep_twin:
        kept = [c["name"] for runtime in every for c in await runtime.list_ours(verdict.run_id)]
        return TwinReleased(run_id=verdict.run_id, twins=kept, reason="kept on request", kept=True)
    removed = [name for runtime in every for name in await runtime.destroy_run(verdict.run_id)]
    return TwinReleased(run_id=verdict.run_id, twins=removed, reason=f"verdict {verdict.status.value}")


async def sweep(runtimes: Runtimes | TwinRuntime, pool: asyncpg.Pool) -> list[str]:
    """Removes twins past their expiry, and twins of runs the janitor already released
    (left behind by a crash between release and removal), in every runtime."""
    removed = []
    for runtime in Runtimes.wrap(runtimes).all():
        removed += await _sweep_one(runtime, pool)
    return removed


async def _sweep_one(runtime: TwinRuntime, pool: asyncpg.Pool) -> list[str]:
    removed = []
    now = datetime.now(UTC)
    for twin in await runtime.list_ours():
        labels = twin["labels"]
        run_id = labels.get(LABEL_RUN, "")
        expired = _expired(labels.get(LABEL_EXPIRES), now)
        released = await pool.fetchval(
            "SELECT status = 'done' FROM janitor_runs WHERE run_id = $1", run_id
        )
        kept = await pool.fetchval(
            "SELECT (outcome->>'kept')::boolean FROM janitor_runs WHERE run_id = $1", run_id
        )
        if expired or (released and not kept):
            await runtime.destroy(twin["name"])
            removed.append(twin["name"])
            log.info("janitor removed %s (%s)", twin["name"], "expired" if expired else "orphan")
    return removed


def _expired(stamp: str | None, now: datetime) -> bool:
    if not stamp:
        return True  # ours but unlabelled: no run can claim it
    try:
        return datetime.fromisoformat(stamp) <= now
    except ValueError:
        return True


def remember_release(event: object):  # type: ignore[no-untyped-def]
    """Keeps whether the twin was kept on request, so the sweep leaves it alone."""
    if not isinstance(event, TwinReleased):
        return None

    async def write(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE janitor_runs SET outcome = $2 WHERE run_id = $1",
            event.run_id,
            json.dumps({"kept": event.kept, "twins": event.twins}),
        )

    return write
