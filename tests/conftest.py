"""Fixtures: the real broker (Tansu), database (PostgreSQL) and Docker engine, started once per
test session the way `patchtwin up` starts them, or as containers (PATCHTWIN_TEST_BACKEND)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchtwin.cli.app import App
from patchtwin.cli.embedded import EmbeddedStack
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from patchtwin.twins.images import ensure_demo_images
from tests import containers
from tests.containers import ContainerStack
from tests.kubernetes.cluster import cluster
from tests.kubernetes.fake_apiserver import FakeApiServer

ROOT = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "security: the adversarial suite (tests/security), attacks on twins through the pipeline"
    )
    config.addinivalue_line(
        "markers", "compose: compose.yaml brought up for real on locally built images (minutes)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"integration", "e2e", "chaos", "security"} & set(item.path.parts):
            item.add_marker(pytest.mark.integration)
        if "security" in item.path.parts:
            item.add_marker(pytest.mark.security)


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[EmbeddedStack | ContainerStack]:
    """The embedded processes, or with PATCHTWIN_TEST_BACKEND=containers the same broker and
    PostgreSQL as containers (tests/containers.py); the Docker engine is the host's either way."""
    with tempfile.TemporaryDirectory(prefix="patchtwin-test-") as scratch:
        started = await (ContainerStack() if containers.wanted() else EmbeddedStack(Path(scratch))).start()
        try:
            yield started
        finally:
            await started.stop()


@pytest.fixture(scope="session")
async def kubeconfig() -> AsyncIterator[tuple[Path, FakeApiServer | None]]:
    """The Kubernetes API the pipeline's `kubernetes` runtime talks to: the in-process fake
    (tests/kubernetes/), or the cluster PATCHTWIN_TEST_KUBECONFIG names."""
    with tempfile.TemporaryDirectory(prefix="patchtwin-k8s-") as scratch:
        async with cluster(Path(scratch)) as found:
            yield found


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack | ContainerStack, kubeconfig: tuple[Path, FakeApiServer | None]) -> Settings:
    """A unique instance per session: the session's janitor never touches twins of another
    session or deployment on the same Docker engine (nor they its twins). Both runtimes are
    on; `kubernetes` talks to the fake API server (or PATCHTWIN_TEST_KUBECONFIG's cluster).
    http_port=0: a free port, so concurrent test sessions never fight over 8080."""
    return stack.configure(
        Settings(janitor_interval_s=5, readiness_timeout_s=30, instance=f"test-{uuid.uuid4().hex[:12]}",
                 runtimes=["docker", "kubernetes"], k8s_kubeconfig=str(kubeconfig[0]), k8s_ready_timeout_s=30,
                 http_port=0)
    )


@pytest.fixture(scope="session")
async def images(settings: Settings) -> list[str]:
    runtime = DockerRuntime()
    try:
        return await ensure_demo_images(runtime, Settings().state_dir)
    finally:
        await runtime.close()


@pytest.fixture(scope="session")
async def pipeline(settings: Settings, images: list[str]) -> AsyncIterator[App]:
    """All five services, as under `patchtwin up`."""
    app = await App(settings).start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[DockerRuntime]:
    """The Docker engine as the services see it: the session's owner and instance."""
    docker = DockerRuntime(settings.docker_url, owner=settings.owner, instance=settings.instance)
    try:
        yield docker
    finally:
        await docker.close()
