"""The Stage composing the ledger: a run resumed more often than allowed ends in RunFailed
RETRIES_EXHAUSTED without its work running again; a conflicting input goes to the stage's hook."""

from __future__ import annotations

import asyncpg
from faststream.kafka import KafkaBroker

from patchtwin.core.ledger import Claim, ClaimResult, fingerprint
from patchtwin.core.stage import Stage
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.events import Event, RunFailed, TwinReleased

RUN = "run-stage-1"


def stage(pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings, **changes: object) -> Stage:
    return Stage("executor", pool=pool, broker=broker, settings=settings.model_copy(update=changes))


async def stored(pool: asyncpg.Pool) -> list[str]:
    return [r["payload"] for r in await pool.fetch("SELECT payload FROM outbox WHERE run_id = $1", RUN)]


async def test_a_run_resumed_past_the_attempt_limit_fails_as_retries_exhausted(
    pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings
) -> None:
    executor = stage(pool, broker, settings, stage_max_attempts=1)
    event = TwinReleased(run_id=RUN, twins=[], reason="test")
    # attempt 1's worker died holding the run: its lease has run out
    await executor.ledger.claim(RUN, fingerprint(event.model_dump(mode="json")), owner="dead", lease_s=0)
    ran: list[str] = []

    async def work() -> Event:
        ran.append("work")
        return event

    await executor.handle(event, work)

    assert ran == []
    [payload] = await stored(pool)
    failed = RunFailed.model_validate_json(payload)
    assert (failed.code, failed.stage, failed.details) == (Code.RETRIES_EXHAUSTED, "executor", {"attempts": 1})
    assert await pool.fetchval(
        "SELECT status FROM stage_runs WHERE stage = 'executor' AND run_id = $1", RUN) == "failed"


async def test_a_run_resumed_within_the_limit_is_worked_on_again(
    pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings
) -> None:
    executor = stage(pool, broker, settings, stage_max_attempts=2)
    event = TwinReleased(run_id=RUN, twins=[], reason="test")
    await executor.ledger.claim(RUN, fingerprint(event.model_dump(mode="json")), owner="dead", lease_s=0)

    async def work() -> Event:
        return event

    await executor.handle(event, work)
    assert [TwinReleased.model_validate_json(p) for p in await stored(pool)] == [event]


async def test_another_input_under_a_run_id_goes_to_the_conflict_hook_and_nothing_runs(
    pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings
) -> None:
    executor = stage(pool, broker, settings)
    first = TwinReleased(run_id=RUN, twins=[], reason="first")
    await executor.handle(first, lambda: _returns(first), key="first")
    conflicts: list[str] = []

    async def on_conflict() -> None:
        conflicts.append(RUN)

    other = TwinReleased(run_id=RUN, twins=["x"], reason="other")
    await executor.handle(other, lambda: _returns(other), key="other", on_conflict=on_conflict, deadline_s=5)
    assert conflicts == [RUN]
    assert len(await stored(pool)) == 1
    assert await executor.ledger.claim(RUN, fingerprint("first")) == ClaimResult(Claim.DONE, 1)


async def test_the_first_stage_sets_the_runs_deadline_once(
    pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings
) -> None:
    executor = stage(pool, broker, settings)
    event = TwinReleased(run_id=RUN, twins=[], reason="test")
    await executor.handle(event, lambda: _returns(event), deadline_s=90)
    seconds = await pool.fetchval(
        "SELECT extract(epoch FROM deadline_at - started_at) FROM stage_runs WHERE stage = 'executor' AND run_id = $1",
        RUN)
    assert float(seconds) == 90


async def _returns(event: Event) -> Event:
    return event
