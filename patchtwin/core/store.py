"""PostgreSQL: the pool, versioned migrations, and what the command line reads back (verdicts,
reports, runs in progress, patch records). The stages' own tables are in `ledger` and `outbox`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from schemas.events import VerdictIssued
from schemas.stages import StageName

_MIGRATION_LOCK = 0x7A7C_0001
#: Migrations that were renamed after release (old version → new): a database that applied
#: one under its old name has it recorded under the new one, so it is not applied twice.
RENAMED = {
    "0002_patch_runs": "0003_patch_runs",
    "0003_reports": "0004_reports",
    "0004_fencing": "0005_fencing",
}


async def connect(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Applies the SQL files in patchtwin/core/migrations in name order, each once. Returns those applied."""
    files = sorted(
        (f for f in resources.files("patchtwin.core.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.executemany(
            "UPDATE schema_migrations SET version = $2 WHERE version = $1", list(RENAMED.items())
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for file in files:
            version = file.name.removesuffix(".sql")
            if version in done:
                continue
            await conn.execute(file.read_text())
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    return applied


# ---------------------------------------------------------------------------------------------
# Verdicts and their reports (written by the analyzer; read by `patchtwin runs|show|report`)


async def save_verdict(conn: asyncpg.Connection, verdict: VerdictIssued, reports: dict[str, str]) -> None:
    """The verdict row and its rendered reports; the first verdict of a run stands."""
    inserted = await conn.fetchval(
        "INSERT INTO verdicts (run_id, event_id, status, confidence, summary, asset_id, patch_id, "
        "verdict) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
        verdict.run_id, verdict.event_id, verdict.status.value, verdict.confidence, verdict.summary,
        verdict.asset_id, verdict.patch_id, verdict.model_dump_json(),
    )
    if inserted is None:
        return
    await conn.executemany(
        "INSERT INTO reports (run_id, format, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [(verdict.run_id, fmt, body) for fmt, body in reports.items()],
    )


async def load_verdict(pool: asyncpg.Pool, run_id: str) -> VerdictIssued | None:
    raw = await pool.fetchval("SELECT verdict FROM verdicts WHERE run_id = $1", run_id)
    return None if raw is None else VerdictIssued.model_validate_json(raw)


async def load_report(pool: asyncpg.Pool, run_id: str, fmt: str) -> str | None:
    body: str | None = await pool.fetchval(
        "SELECT body FROM reports WHERE run_id = $1 AND format = $2", run_id, fmt)
    return body


@dataclass(frozen=True)
class RunRow:
    """One run as `patchtwin runs` lists it: in progress (no verdict yet) or judged."""

    run_id: str
    started_at: datetime | None
    issued_at: datetime | None
    status: str
    confidence: float | None
    asset_id: str | None
    patch_id: str | None
    durations_s: dict[str, float]
    summary: str


async def recent_runs(pool: asyncpg.Pool, limit: int = 20, run_id: str | None = None) -> list[RunRow]:
    """The newest runs first: every run the provisioner took on, and every run with a verdict."""
    rows = await pool.fetch(
        "SELECT coalesce(v.run_id, p.run_id) AS run_id, p.started_at, v.issued_at, v.status, "
        "v.confidence, v.asset_id, v.patch_id, v.summary, v.verdict->'durations_s' AS durations "
        "FROM verdicts v FULL OUTER JOIN (SELECT run_id, started_at FROM stage_runs WHERE stage = $3) p "
        "ON p.run_id = v.run_id "
        "WHERE $2::text IS NULL OR coalesce(v.run_id, p.run_id) = $2 "
        "ORDER BY coalesce(p.started_at, v.issued_at) DESC LIMIT $1",
        limit, run_id, StageName.PROVISIONER,
    )
    return [
        RunRow(
            run_id=r["run_id"], started_at=r["started_at"], issued_at=r["issued_at"],
            status=r["status"] or "running", confidence=r["confidence"], asset_id=r["asset_id"],
            patch_id=r["patch_id"], durations_s=json.loads(r["durations"]) if r["durations"] else {},
            summary=r["summary"] or "",
        )
        for r in rows
    ]


async def run_progress(pool: asyncpg.Pool, run_id: str) -> dict[str, str]:
    """How far a run got: each stage's ledger status (working, done, failed) where it has a row,
    in the order of the pipeline."""
    rows = await pool.fetch("SELECT stage, status FROM stage_runs WHERE run_id = $1", run_id)
    status = {r["stage"]: r["status"] for r in rows}
    return {stage.value: status[stage] for stage in StageName if stage in status}


# ---------------------------------------------------------------------------------------------
# What a run was asked to do and what its patch put into the twin (read by `patchtwin rerun`)


@dataclass(frozen=True)
class PatchRun:
    """The executor's record of a run's patch (`patch_runs`): the patch as applied, the sha256 of
    every artifact and .deb it put into the twin (`inputs`), and how it ended (None: not applied)."""

    run_id: str
    patch: dict[str, Any]
    inputs: dict[str, Any]
    outcome: dict[str, Any] | None


async def load_patch_run(pool: asyncpg.Pool, run_id: str) -> PatchRun | None:
    try:
        row = await pool.fetchrow("SELECT patch, inputs, outcome FROM patch_runs WHERE run_id = $1", run_id)
    except asyncpg.UndefinedTableError:  # a database no executor ever ran against
        return None
    if row is None:
        return None
    return PatchRun(run_id=run_id, patch=json.loads(row["patch"]), inputs=json.loads(row["inputs"]),
                    outcome=json.loads(row["outcome"]) if row["outcome"] is not None else None)


async def load_request(pool: asyncpg.Pool, run_id: str) -> dict[str, Any] | None:
    """The run's TwinRequested as the provisioner took it on: it travels in every TwinReady
    (`context.request`), and the provisioner's TwinReady is kept in the outbox."""
    payload = await pool.fetchval(
        "SELECT payload FROM outbox WHERE run_id = $1 AND topic = 'twin.ready' ORDER BY created_at LIMIT 1", run_id)
    if payload is None:
        return None
    request: dict[str, Any] = json.loads(payload)["context"]["request"]
    return request
