"""The adversarial suite's own pipeline: the same five services as `patchtwin up`, on the
session's broker, database and Docker engine, with small twin limits so every attack hits
its limit in seconds. Its own topic prefix and instance keep it apart from the `pipeline`
fixture's runs when both are in one session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from patchtwin.cli.app import App
from patchtwin.settings import Settings

#: the limits every attack meets (a request may still set its own `asset.resources`)
LIMITS = {
    "twin_memory_mb": 128,
    "twin_pids": 64,
    "twin_cpus": 0.5,
    "twin_fsize_mb": 8,
    "twin_tmpfs_mb": 4,
    "patch_output_cap_bytes": 64 * 1024,
    "patch_kill_grace_s": 3.0,
}


@pytest.fixture(scope="session")
def security_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        **LIMITS, "topic_prefix": "security.", "instance": f"security-{uuid.uuid4().hex[:10]}",
    })


@pytest.fixture(scope="session")
async def security_pipeline(security_settings: Settings, images: list[str]) -> AsyncIterator[App]:
    app = await App(security_settings).start()
    try:
        yield app
    finally:
        await app.stop()
