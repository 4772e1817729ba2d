"""The twin limit: room is given in order, never past the limit, and freed when twins go."""

from __future__ import annotations

import asyncio

import pytest

from patchtwin.twins.capacity import TwinGate, default_max_twins


def test_default_is_four_twins_per_core() -> None:
    assert default_max_twins(cores=2, memory_mb=24_000) == 8


def test_default_shrinks_when_memory_is_short() -> None:
    assert default_max_twins(cores=16, memory_mb=2048) == 4


def test_default_never_goes_under_two() -> None:
    assert default_max_twins(cores=1, memory_mb=256) == 2


def test_a_limit_under_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TwinGate(0, lambda: asyncio.sleep(0, set()))


class Engine:
    """Twins that exist, as the engine would list them."""

    def __init__(self) -> None:
        self.twins: set[str] = set()

    async def alive(self) -> set[str]:
        return set(self.twins)


async def test_admits_up_to_the_limit_then_holds_the_next_request() -> None:
    engine = Engine()
    gate = TwinGate(2, engine.alive, poll_s=0.01)
    for run in ("a", "b"):
        async with gate.admit(run):
            engine.twins.add(run)
    waiting = asyncio.create_task(_provision(gate, engine, "c"))
    await asyncio.sleep(0.1)
    assert not waiting.done(), "a third twin was made while two were alive"
    engine.twins.discard("a")  # the janitor released a run
    waited = await asyncio.wait_for(waiting, 2)
    assert waited >= 0.09
    assert engine.twins == {"b", "c"}
    assert gate.most_alive == 2


async def test_twins_being_made_count_before_the_engine_shows_them() -> None:
    engine = Engine()
    gate = TwinGate(1, engine.alive, poll_s=0.01)
    async with gate.admit("a"):  # not yet visible in the engine
        second = asyncio.create_task(_provision(gate, engine, "b"))
        await asyncio.sleep(0.05)
        assert not second.done()
    await asyncio.wait_for(second, 2)


async def test_a_run_whose_twin_exists_is_not_held_by_itself() -> None:
    engine = Engine()
    engine.twins.add("a")  # a redelivered request whose twin was made before a crash
    gate = TwinGate(1, engine.alive, poll_s=0.01)
    await asyncio.wait_for(_provision(gate, engine, "a"), 1)


async def _provision(gate: TwinGate, engine: Engine, run: str) -> float:
    async with gate.admit(run) as waited:
        engine.twins.add(run)
        return waited
