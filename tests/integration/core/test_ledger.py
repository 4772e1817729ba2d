"""Every path of the run ledger against real PostgreSQL, deterministically: a lease of 0 s has
run out by the next transaction, so no test waits for a lease to expire."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from patchtwin.core.ledger import Claim, ClaimResult, Fenced, Ledger, fingerprint
from schemas.events import TwinReleased

RUN = "run-ledger-1"
FP = fingerprint({"input": 1})


def released(run_id: str = RUN) -> TwinReleased:
    return TwinReleased(run_id=run_id, twins=[], reason="test")


async def row(pool: asyncpg.Pool, stage: str = "executor", run_id: str = RUN) -> asyncpg.Record:
    found = await pool.fetchrow(
        "SELECT status, attempts, owner, lease_until > now() AS alive FROM stage_runs "
        "WHERE stage = $1 AND run_id = $2", stage, run_id)
    assert found is not None
    return found


async def outbox_events(pool: asyncpg.Pool, run_id: str = RUN) -> list[str]:
    return [r["event_id"] for r in await pool.fetch("SELECT event_id FROM outbox WHERE run_id = $1", run_id)]


async def test_a_first_claim_is_new_attempt_one_leased_to_its_owner(pool: asyncpg.Pool) -> None:
    assert await Ledger(pool, "executor").claim(RUN, FP, owner="a", lease_s=30) == ClaimResult(Claim.NEW, 1)
    claimed = await row(pool)
    assert (claimed["status"], claimed["attempts"], claimed["owner"], claimed["alive"]) == ("working", 1, "a", True)


async def test_a_run_under_another_live_lease_is_busy(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=30)
    assert await ledger.claim(RUN, FP, owner="b", lease_s=30) == ClaimResult(Claim.BUSY, 1)
    assert (await row(pool))["owner"] == "a"


async def test_a_run_whose_lease_ran_out_is_resumed_as_the_next_attempt(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=0)
    assert await ledger.claim(RUN, FP, owner="b", lease_s=30) == ClaimResult(Claim.RESUMED, 2)
    resumed = await row(pool)
    assert (resumed["attempts"], resumed["owner"], resumed["alive"]) == (2, "b", True)


async def test_a_fenced_writer_is_refused_and_writes_nothing(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="zombie", lease_s=0)
    await ledger.claim(RUN, FP, owner="b", lease_s=30)
    late = released()

    try:
        await ledger.finish(RUN, late, source="patchtwin/executor", attempt=1)
    except Fenced:
        pass
    else:
        raise AssertionError("the zombie's finish was accepted")
    assert await ledger.renew(RUN, 1, 30) is False  # nor may it keep the lease
    assert await outbox_events(pool) == []
    assert ((await row(pool))["status"], (await row(pool))["attempts"]) == ("working", 2)

    current = released()
    await ledger.finish(RUN, current, source="patchtwin/executor", attempt=2)
    assert await outbox_events(pool) == [current.event_id]
    assert (await row(pool))["status"] == "done"


async def test_a_handed_back_run_is_resumed_at_once(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=30)
    await ledger.hand_back(RUN, 1)
    assert await ledger.claim(RUN, FP, owner="b", lease_s=30) == ClaimResult(Claim.RESUMED, 2)


async def test_a_finished_run_delivered_again_is_done(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=30)
    await ledger.finish(RUN, released(), source="patchtwin/executor", attempt=1)
    assert await ledger.claim(RUN, FP, owner="b", lease_s=30) == ClaimResult(Claim.DONE, 1)


async def test_the_same_run_id_with_another_input_is_a_conflict(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=30)
    await ledger.finish(RUN, released(), source="patchtwin/executor", attempt=1)
    assert await ledger.claim(RUN, fingerprint({"input": 2}), owner="b", lease_s=0) == ClaimResult(Claim.CONFLICT, 1)


async def test_each_stage_has_its_own_row_of_a_run(pool: asyncpg.Pool) -> None:
    await Ledger(pool, "executor").claim(RUN, FP, owner="a", lease_s=30)
    assert await Ledger(pool, "prober").claim(RUN, FP, owner="a", lease_s=30) == ClaimResult(Claim.NEW, 1)


async def test_a_failed_outgoing_event_marks_the_run_failed(pool: asyncpg.Pool) -> None:
    from schemas.codes import Code
    from schemas.events import RunFailed

    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=30)
    await ledger.finish(RUN, RunFailed(run_id=RUN, stage="executor", code=Code.INTERNAL_ERROR, message="x"),
                        source="patchtwin/executor", attempt=1)
    assert (await row(pool))["status"] == "failed"


async def test_an_abandoned_attempt_ends_failed_without_an_event(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "prober")
    await ledger.claim(RUN, FP, owner="a", lease_s=30)
    await ledger.abandon(RUN, 1, "the run already has its verdict")
    outcome = await pool.fetchval("SELECT outcome FROM stage_runs WHERE stage = 'prober' AND run_id = $1", RUN)
    assert json.loads(outcome) == {"abandoned": "the run already has its verdict"}
    assert ((await row(pool, "prober"))["status"], await outbox_events(pool)) == ("failed", [])


async def test_a_lease_is_renewed_while_the_work_runs_and_handed_back_when_cut_short(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "executor")
    await ledger.claim(RUN, FP, owner="a", lease_s=0.3)
    started = asyncio.Event()

    async def work() -> None:
        async with ledger.leased(RUN, 1, 0.3):
            started.set()
            await asyncio.sleep(0.8)  # well past the lease: only renewals keep it
            assert await ledger.claim(RUN, FP, owner="b", lease_s=30) == ClaimResult(Claim.BUSY, 1)
            await asyncio.sleep(30)

    task = asyncio.create_task(work())
    await started.wait()
    await asyncio.sleep(0.9)
    assert not task.done(), task  # the BUSY assertion held
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await ledger.claim(RUN, FP, owner="b", lease_s=30) == ClaimResult(Claim.RESUMED, 2)
