"""Nothing fails silently: with the database stopped under them, the outbox relay and a lease's
renewal log each failure (with the stage, and the run where one is known) and count it; once the
database is back the relay publishes what was pending."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from patchtwin.cli.embedded import EmbeddedDatabase
from patchtwin.core import store
from patchtwin.core.ledger import Ledger
from patchtwin.core.outbox import Outbox, OutboxRecord
from patchtwin.settings import Settings
from schemas.events import TwinReleased
from tests.clients import keyed, new_run_id, read_topic


@dataclass
class Database:
    """A PostgreSQL of this test's own, to stop and start again (same data, same address)."""

    server: EmbeddedDatabase
    dsn: str
    pool: asyncpg.Pool

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        assert await asyncio.to_thread(self.server.start) == self.dsn


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    # (not pytest's tmp_path: its folders are private to root, and PostgreSQL runs as another user)
    with tempfile.TemporaryDirectory(prefix="patchtwin-outage-") as scratch:
        server = EmbeddedDatabase(Path(scratch) / "pgdata")
        dsn = await asyncio.to_thread(server.start)
        try:
            pool = await store.connect(dsn)
            await store.migrate(pool)
            yield Database(server, dsn, pool)
            await pool.close()
        finally:
            await asyncio.to_thread(server.stop)


def counted(name: str, stage: str) -> float:
    """The counter's value for the stage, as `/metrics` shows it."""
    return sum(sample.value for family in REGISTRY.collect() for sample in family.samples
               if sample.name == name and sample.labels.get("stage") == stage)


async def until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_the_relay_logs_and_counts_a_database_outage_and_recovers(
    database: Database, broker: KafkaBroker, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    stage = f"relay-{new_run_id('s')}"
    outbox = Outbox(stage, pool=database.pool, broker=broker, settings=settings)
    run_id = new_run_id("outage")
    async with database.pool.acquire() as conn:  # stored, not yet sent, old enough for the relay
        await OutboxRecord.of(TwinReleased(run_id=run_id, twins=[], reason="test"), outbox.source).insert(conn)
        await conn.execute("UPDATE outbox SET created_at = now() - interval '1 minute'")
    await database.stop()

    caplog.set_level(logging.WARNING, "patchtwin.stage")
    outbox.start_relay(interval_s=0.2)
    try:
        await until(lambda: counted("patchtwin_relay_errors_total", stage) >= 2, 30)
        assert f"{stage}: relay failed" in caplog.text

        await database.start()
        [record] = await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=30)
    finally:
        await outbox.stop_relay()
    assert dict(record.headers)["ce_source"] == outbox.source.encode()
    assert await database.pool.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE run_id = $1", run_id)


async def test_a_lease_renewal_that_fails_is_logged_with_its_run_and_counted(
    database: Database, broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    stage = f"lease-{new_run_id('s')}"
    ledger = Ledger(database.pool, stage)
    run_id = new_run_id("lease")
    await ledger.claim(run_id, "fp", owner="a", lease_s=0.3)
    caplog.set_level(logging.WARNING, "patchtwin.stage")

    async with ledger.leased(run_id, 1, 0.3):
        await database.stop()
        await until(lambda: counted("patchtwin_lease_renewal_errors_total", stage) >= 1, 30)
    assert f"{stage}: could not renew the lease of run {run_id} (attempt 1)" in caplog.text
    await database.start()
