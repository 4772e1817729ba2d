"""A fresh, migrated database per test, on the session's PostgreSQL: the ledger and outbox
tests see only their own rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from patchtwin.cli.embedded import EmbeddedStack
from patchtwin.core import store


@pytest.fixture
async def pool(stack: EmbeddedStack) -> AsyncIterator[asyncpg.Pool]:
    assert stack.database_url
    name = f"core_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        pool = await store.connect(urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{name}")))
        try:
            await store.migrate(pool)
            yield pool
        finally:
            await pool.close()
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()
