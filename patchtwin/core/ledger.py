"""The run ledger: one row per (stage, run) in `stage_runs`, claimed on arrival, leased while
worked on, finished with the outgoing event.

Why a ledger: a stage records "run X is done" and the event it produced in one transaction,
so a redelivered input finds the row and repeats nothing. Why leases and fencing: only a
claim whose lease ran out (its worker died) can be taken over, as the next attempt, and every
write names its attempt, so a zombie's late `finish` is refused (`Fenced`) and its outgoing
event never reaches the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from patchtwin.core.outbox import LOSABLE, OutboxRecord
from patchtwin.observability import telemetry
from patchtwin.observability.logs import about_run
from schemas.events import Event
from schemas.topics import Topic

log = logging.getLogger("patchtwin.stage")


def fingerprint(payload: Any) -> str:
    """What makes two inputs of a run the same: the hash of their canonical JSON."""
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


class Fenced(Exception):
    """A worker wrote for an attempt that is no longer the run's current one: its lease ran
    out and another worker took the run over (it was a zombie). The write did not happen."""


class Ledger:
    """One stage's rows of `stage_runs`. Claims commit without waiting for the disk (`LOSABLE`:
    a lost claim is claimed again on redelivery); finishing a run always waits for it."""

    def __init__(self, pool: asyncpg.Pool, stage: str) -> None:
        self.pool = pool
        self.stage = stage

    async def claim(self, run_id: str, fingerprint: str, *, owner: str = "", lease_s: float = 30.0) -> ClaimResult:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(LOSABLE)
            row = await conn.fetchrow(
                "INSERT INTO stage_runs (stage, run_id, fingerprint, status, owner, lease_until) "
                "VALUES ($1, $2, $3, 'working', $4, now() + make_interval(secs => $5)) "
                "ON CONFLICT (stage, run_id) DO NOTHING RETURNING attempts",
                self.stage, run_id, fingerprint, owner, lease_s,
            )
            if row is not None:
                return ClaimResult(Claim.NEW, 1)
            row = await conn.fetchrow(
                "SELECT fingerprint, status, attempts, lease_until > now() AS alive "
                "FROM stage_runs WHERE stage = $1 AND run_id = $2 FOR UPDATE",
                self.stage, run_id,
            )
            assert row is not None
            if row["fingerprint"] != fingerprint:
                return ClaimResult(Claim.CONFLICT, row["attempts"])
            if row["status"] != "working":
                return ClaimResult(Claim.DONE, row["attempts"])
            if row["alive"]:
                return ClaimResult(Claim.BUSY, row["attempts"])
            attempts = await conn.fetchval(
                "UPDATE stage_runs SET attempts = attempts + 1, owner = $3, "
                "lease_until = now() + make_interval(secs => $4) WHERE stage = $1 AND run_id = $2 RETURNING attempts",
                self.stage, run_id, owner, lease_s,
            )
            return ClaimResult(Claim.RESUMED, attempts)

    async def set_deadline(self, run_id: str, seconds: float) -> None:
        """When the whole run must have its verdict by (the janitor's watchdog reads it)."""
        await self.pool.execute(
            "UPDATE stage_runs SET deadline_at = coalesce(deadline_at, started_at + make_interval(secs => $3)) "
            "WHERE stage = $1 AND run_id = $2",
            self.stage, run_id, seconds,
        )

    async def abandon(self, run_id: str, attempt: int, why: str) -> None:
        """Ends an attempt without an event: the run already has its verdict (the watchdog
        gave up on it), so what this stage would produce could only be thrown away."""
        await self.pool.execute(
            "UPDATE stage_runs SET status = 'failed', finished_at = now(), lease_until = NULL, outcome = $4 "
            "WHERE stage = $1 AND run_id = $2 AND attempts = $3 AND status = 'working'",
            self.stage, run_id, attempt, json.dumps({"abandoned": why}),
        )

    async def renew(self, run_id: str, attempt: int, lease_s: float) -> bool:
        """Extends the lease of `attempt`; False when the run is no longer ours."""
        result = await self.pool.execute(
            "UPDATE stage_runs SET lease_until = now() + make_interval(secs => $4) "
            "WHERE stage = $1 AND run_id = $2 AND attempts = $3 AND status = 'working'",
            self.stage, run_id, attempt, lease_s,
        )
        return bool(result.endswith(" 1"))

    async def hand_back(self, run_id: str, attempt: int) -> None:
        """Ends the lease of an attempt that stops without finishing (a graceful shutdown), so
        the worker that gets the message next takes the run over at once."""
        await self.pool.execute(
            "UPDATE stage_runs SET lease_until = now() "
            "WHERE stage = $1 AND run_id = $2 AND attempts = $3 AND status = 'working'",
            self.stage, run_id, attempt,
        )

    async def finish(
        self,
        run_id: str,
        outgoing: Event,
        *,
        source: str,
        also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
        attempt: int | None = None,
    ) -> OutboxRecord:
        """Marks the run done (or failed) and stores its outgoing event in the outbox, atomically.

        `also` writes the stage's own records in the same transaction. With `attempt`, only
        that attempt may finish the run (else `Fenced`, and nothing is written)."""
        record = OutboxRecord.of(outgoing, source)
        status = "failed" if outgoing.topic is Topic.RUN_FAILED else "done"
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute(
                "UPDATE stage_runs SET status = $3, finished_at = now(), outcome = '{}', lease_until = NULL "
                "WHERE stage = $1 AND run_id = $2 AND ($4::integer IS NULL OR (attempts = $4 AND status = 'working'))",
                self.stage, run_id, status, attempt,
            )
            if attempt is not None and not result.endswith(" 1"):
                raise Fenced(f"{self.stage}: attempt {attempt} of run {run_id} was taken over; not recorded")
            await record.insert(conn)
            if also is not None:
                await also(conn)
        return record

    @contextlib.asynccontextmanager
    async def leased(self, run_id: str, attempt: int, lease_s: float) -> AsyncIterator[None]:
        """Renews the attempt's lease while the body runs; hands it back when the body is cut
        short (shutdown), so the next worker to get the message takes the run over at once."""
        renewer = asyncio.create_task(self._renew_forever(run_id, attempt, lease_s))
        try:
            yield
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self.hand_back(run_id, attempt))
            except Exception as exc:  # the lease then runs out by itself
                with about_run(run_id):
                    log.warning("%s: could not hand back run %s (attempt %d): %s", self.stage, run_id, attempt, exc)
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew_forever(self, run_id: str, attempt: int, lease_s: float) -> None:
        """Renews every third of the lease, so one failed renewal (logged, counted in
        `patchtwin_lease_renewal_errors_total`) does not yet lose the run."""
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                if not await self.renew(run_id, attempt, lease_s):
                    with about_run(run_id):
                        log.warning("%s: lost the lease of run %s (attempt %d)", self.stage, run_id, attempt)
                    return
            except Exception as exc:
                telemetry.LEASE_RENEWAL_ERRORS.add(1, {"stage": self.stage})
                with about_run(run_id):
                    log.warning("%s: could not renew the lease of run %s (attempt %d): %s: %s",
                                self.stage, run_id, attempt, type(exc).__name__, exc)
