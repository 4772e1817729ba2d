"""Where the Kubernetes tests run: the in-process fake API server, or — when
`PATCHTWIN_TEST_KUBECONFIG` names a kubeconfig — a real cluster (e.g. kind), in which case
the tests that inspect the fake's recorded requests are skipped."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import yaml

from tests.kubernetes.fake_apiserver import FakeApiServer

REAL_KUBECONFIG = os.environ.get("PATCHTWIN_TEST_KUBECONFIG")


def write_kubeconfig(url: str, path: Path) -> Path:
    """A kubeconfig for the fake server (plain HTTP, no credentials), so the runtime loads
    its configuration the way it does for a real cluster."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    return path


@asynccontextmanager
async def cluster(scratch: Path, *, workloads_ready: bool = True) -> AsyncIterator[tuple[Path, FakeApiServer | None]]:
    """A kubeconfig path, and the fake server behind it (None on a real cluster)."""
    if REAL_KUBECONFIG:
        yield Path(REAL_KUBECONFIG), None
        return
    fake = FakeApiServer(workloads_ready=workloads_ready)
    url = await fake.start()
    try:
        yield write_kubeconfig(url, scratch / "kubeconfig"), fake
    finally:
        await fake.stop()
