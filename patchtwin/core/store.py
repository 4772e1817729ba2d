"""PostgreSQL: the pool, versioned migrations, each stage's ledger and the outbox.

Why a ledger plus an outbox: a stage records "run X is done" and the event it
produced in one transaction, so a redelivered input finds the row and repeats
nothing, and an event whose publish was cut short by a crash is still published
(by the relay) exactly as it was stored, with the same event id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib import resources
from typing import Any

import asyncpg

from patchtwin.observability.telemetry import current_traceparent
from schemas.events import Event, VerdictIssued

_MIGRATION_LOCK = 0x7A7C_0001


async def connect(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Applies the SQL files in patchtwin/migrations in name order, each once. Returns those applied."""
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
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for file in files:
            version = file.name.removesuffix(".sql")
            if version in done:
                continue
            await conn.execute(file.read_text())
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    return applied


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class Claim(StrEnum):
    NEW = "new"  # first time this run reaches the stage
    RESUMED = "resumed"  # an earlier attempt started, and its worker is gone (its lease ran out)
    BUSY = "busy"  # another worker handles the run right now (its lease is alive)
    DONE = "done"  # already finished: a redelivery
    CONFLICT = "conflict"  # the same run id with a different input


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    #: The attempt this claim is (1 for NEW): the fencing token every later write names.
    attempts: int


#: For writes whose loss in a database crash is harmless, the commit does not wait for the
#: disk (one fsync less on every Kafka hop): a lost claim is claimed again on redelivery, a
#: lost "published" mark makes the relay publish again and consumers drop the duplicate.
#: Finishing a run (its outcome and outgoing event) always waits for the disk.
_LOSABLE = "SET LOCAL synchronous_commit = off"


class Fenced(Exception):
    """A worker wrote for an attempt that is no longer the run's current one: its lease ran
    out and another worker took the run over (it was a zombie). The write did not happen."""


class Ledger:
    """One stage's table of runs: claim on arrival, finish with the outgoing event.

    A claim is a lease: the worker holding it renews it while it works (`renew`), and only
    a claim whose lease ran out (its worker died) can be taken over, as the next attempt.
    Writes name their attempt, so a zombie's late `finish` is refused (`Fenced`) and its
    outgoing event never reaches the outbox."""

    def __init__(self, pool: asyncpg.Pool, stage: str) -> None:
        self.pool = pool
        self.stage = stage
        self.table = f"{stage}_runs"

    async def claim(self, run_id: str, fingerprint: str, *, owner: str = "", lease_s: float = 30.0) -> ClaimResult:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOSABLE)
            row = await conn.fetchrow(
                f"INSERT INTO {self.table} (run_id, fingerprint, status, owner, lease_until) "
                "VALUES ($1, $2, 'working', $3, now() + make_interval(secs => $4)) "
                "ON CONFLICT (run_id) DO NOTHING RETURNING attempts",
                run_id,
                fingerprint,
                owner,
                lease_s,
            )
            if row is not None:
                return ClaimResult(Claim.NEW, 1)
            row = await conn.fetchrow(
                f"SELECT fingerprint, status, attempts, lease_until > now() AS alive "
                f"FROM {self.table} WHERE run_id = $1 FOR UPDATE",
                run_id,
            )
            assert row is not None
            if row["fingerprint"] != fingerprint:
                return ClaimResult(Claim.CONFLICT, row["attempts"])
            if row["status"] != "working":
                return ClaimResult(Claim.DONE, row["attempts"])
            if row["alive"]:
                return ClaimResult(Claim.BUSY, row["attempts"])
            attempts = await conn.fetchval(
                f"UPDATE {self.table} SET attempts = attempts + 1, owner = $2, "
                "lease_until = now() + make_interval(secs => $3) WHERE run_id = $1 RETURNING attempts",
                run_id,
                owner,
                lease_s,
            )
            return ClaimResult(Claim.RESUMED, attempts)

    async def set_deadline(self, run_id: str, seconds: float) -> None:
        """When the whole run must have its verdict by (the janitor's watchdog reads it)."""
        await self.pool.execute(
            f"UPDATE {self.table} SET deadline_at = coalesce(deadline_at, started_at + make_interval(secs => $2)) "
            "WHERE run_id = $1",
            run_id,
            seconds,
        )

    async def abandon(self, run_id: str, attempt: int, why: str) -> None:
        """Ends an attempt without an event: the run already has its verdict (the watchdog
        gave up on it), so what this stage would produce could only be thrown away."""
        await self.pool.execute(
            f"UPDATE {self.table} SET status = 'failed', finished_at = now(), lease_until = NULL, outcome = $3 "
            "WHERE run_id = $1 AND attempts = $2 AND status = 'working'",
            run_id,
            attempt,
            json.dumps({"abandoned": why}),
        )

    async def renew(self, run_id: str, attempt: int, lease_s: float) -> bool:
        """Extends the lease of `attempt`; False when the run is no longer ours."""
        result = await self.pool.execute(
            f"UPDATE {self.table} SET lease_until = now() + make_interval(secs => $3) "
            "WHERE run_id = $1 AND attempts = $2 AND status = 'working'",
            run_id,
            attempt,
            lease_s,
        )
        return bool(result.endswith(" 1"))

    async def hand_back(self, run_id: str, attempt: int) -> None:
        """Ends the lease of an attempt that stops without finishing (a graceful shutdown), so
        the worker that gets the message next takes the run over at once."""
        await self.pool.execute(
            f"UPDATE {self.table} SET lease_until = now() WHERE run_id = $1 AND attempts = $2 AND status = 'working'",
            run_id,
            attempt,
        )

    async def finish(
        self,
        run_id: str,
        outgoing: Event,
        *,
        source: str,
        outcome: dict[str, Any] | None = None,
        also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
        attempt: int | None = None,
    ) -> OutboxRecord:
        """Marks the run done (or failed) and stores its outgoing event, atomically.

        `also` writes the stage's own records in the same transaction. With `attempt`, only
        that attempt may finish the run (else `Fenced`, and nothing is written)."""
        record = OutboxRecord.of(outgoing, source)
        status = "failed" if outgoing.topic.value == "run.failed" else "done"
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute(
                f"UPDATE {self.table} SET status = $2, finished_at = now(), outcome = $3, lease_until = NULL "
                "WHERE run_id = $1 AND ($4::integer IS NULL OR (attempts = $4 AND status = 'working'))",
                run_id,
                status,
                json.dumps(outcome or {}),
                attempt,
            )
            if attempt is not None and not result.endswith(" 1"):
                raise Fenced(f"{self.stage}: attempt {attempt} of run {run_id} was taken over; not recorded")
            await record.insert(conn)
            if also is not None:
                await also(conn)
        return record

    async def mark_only(self, run_id: str, status: str, fingerprint: str) -> None:
        """Records a run that ends here without an event of this stage (e.g. a dead letter)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self.table} (run_id, fingerprint, status, finished_at) "
                "VALUES ($1, $2, $3, now()) ON CONFLICT (run_id) DO NOTHING",
                run_id,
                fingerprint,
                status,
            )


@dataclass(frozen=True)
class OutboxRecord:
    event_id: str
    run_id: str
    topic: str
    source: str
    ce_type: str
    payload: str
    traceparent: str | None = None  # observe: the run's trace continues from the outbox

    @classmethod
    def of(cls, event: Event, source: str) -> OutboxRecord:
        return cls(
            event_id=event.event_id,
            run_id=event.run_id,
            topic=event.topic.value,
            source=source,
            ce_type=event.ce_type(),
            payload=event.model_dump_json(),
            traceparent=current_traceparent(),
        )

    async def insert(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO outbox (event_id, run_id, topic, source, ce_type, payload, traceparent) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
            self.event_id,
            self.run_id,
            self.topic,
            self.source,
            self.ce_type,
            self.payload,
            self.traceparent,
        )


async def pending_outbox(
    pool: asyncpg.Pool, source: str, limit: int = 100, *, min_age_s: float = 5.0
) -> list[OutboxRecord]:
    """Stored events not yet published. Only those older than `min_age_s`: a younger one is most
    likely being published right now by the stage that stored it, and sending it from the relay
    too would put the same event on the topic twice."""
    rows = await pool.fetch(
        "SELECT event_id, run_id, topic, source, ce_type, payload, traceparent FROM outbox "
        "WHERE published_at IS NULL AND source = $1 AND created_at < now() - make_interval(secs => $3) "
        "ORDER BY created_at LIMIT $2",
        source,
        limit,
        min_age_s,
    )
    return [OutboxRecord(**dict(r)) for r in rows]


async def mark_published(pool: asyncpg.Pool, event_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOSABLE)
        await conn.execute("UPDATE outbox SET published_at = now() WHERE event_id = $1", event_id)


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
        "FROM verdicts v FULL OUTER JOIN provisioner_runs p ON p.run_id = v.run_id "
        "WHERE $2::text IS NULL OR coalesce(v.run_id, p.run_id) = $2 "
        "ORDER BY coalesce(p.started_at, v.issued_at) DESC LIMIT $1",
        limit, run_id,
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


LEDGER_STAGES: tuple[str, ...] = ("provisioner", "executor", "prober", "analyzer", "janitor")


async def run_progress(pool: asyncpg.Pool, run_id: str) -> dict[str, str]:
    """How far a run got: each stage's ledger status (working, done, failed) where it has a row."""
    progress: dict[str, str] = {}
    for stage in LEDGER_STAGES:
        try:
            status = await pool.fetchval(f"SELECT status FROM {stage}_runs WHERE run_id = $1", run_id)
        except asyncpg.UndefinedTableError:
            continue
        if status is not None:
            progress[stage] = status
    return progress


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
