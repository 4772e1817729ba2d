"""A database of each test's own on the session's PostgreSQL: the ledger, outbox and migration
tests see only their own rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from faststream.kafka import KafkaBroker

from patchtwin.cli.embedded import EmbeddedStack
from patchtwin.core import store
from patchtwin.core.bus import make_broker
from patchtwin.observability import telemetry
from patchtwin.settings import Settings


@pytest.fixture
async def empty_database(stack: EmbeddedStack) -> AsyncIterator[str]:
    """The address of a new, empty database (dropped after the test)."""
    assert stack.database_url
    name = f"core_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{name}"))
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(empty_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new database with every migration applied."""
    pool = await store.connect(empty_database)
    try:
        await store.migrate(pool)
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[KafkaBroker]:
    """A started broker client on the session's broker (no routers: the stage publishes)."""
    telemetry.setup(settings)  # the meter provider the outage counters report to (once per process)
    started = make_broker(settings)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
