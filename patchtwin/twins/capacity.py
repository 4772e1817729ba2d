"""How many twins may be alive at once, and back-pressure when more are asked for.

A twin lives from provisioning until the janitor releases it after the verdict, so the
limit is checked against the twins that exist, not against handlers in flight. While the
limit is reached the provisioner holds its current request and reads no further ones:
the rest wait in Kafka (the bench reports that wait as `queue_wait`), nothing is dropped
and the engine is never asked for more containers than it was sized for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

#: Twins a default limit budgets per core, and memory (MiB) per twin: the reference nginx
#: twin uses ~15 MiB, patches use more; 512 leaves room for package upgrades.
TWINS_PER_CORE = 4
MIB_PER_TWIN = 512


def default_max_twins(cores: int | None = None, memory_mb: int | None = None) -> int:
    """`TWINS_PER_CORE` per core, fewer when memory is short, never under 2."""
    cores = cores or os.cpu_count() or 1
    memory_mb = memory_mb if memory_mb is not None else _total_memory_mb()
    return max(2, min(TWINS_PER_CORE * cores, memory_mb // MIB_PER_TWIN))


def _total_memory_mb() -> int:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096
    return int(pages * page_size // (1024 * 1024))


class TwinGate:
    """Admits a run's provisioning when fewer than `limit` runs have twins (counting runs
    this process is still provisioning). Exact within one process; with several
    provisioner processes the count comes from the engine, so two may pass at once."""

    def __init__(self, limit: int, alive_runs: Callable[[], Awaitable[set[str]]], poll_s: float = 0.1) -> None:
        if limit < 1:
            raise ValueError("the twin limit must be at least 1")
        self.limit = limit
        self._alive_runs = alive_runs
        self._poll_s = poll_s
        self._admitted: set[str] = set()
        self._lock = asyncio.Lock()
        self.most_alive = 0

    async def occupied(self, *, besides: str = "") -> int:
        """Runs holding a twin or being given one, not counting `besides`."""
        return len((await self._alive_runs() | self._admitted) - {besides})

    @contextlib.asynccontextmanager
    async def admit(self, run_id: str) -> AsyncIterator[float]:
        """Waits for room, then holds it while the twin is made; yields the seconds waited."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self._lock:
            while (occupied := await self.occupied(besides=run_id)) >= self.limit:
                await asyncio.sleep(self._poll_s)
            self._admitted.add(run_id)
            self.most_alive = max(self.most_alive, occupied + 1)
        try:
            yield loop.time() - started
        finally:
            self._admitted.discard(run_id)
