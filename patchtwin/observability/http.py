"""Each process's HTTP endpoint: `/healthz`, `/readyz` and `/metrics` (Prometheus text).

Why separate liveness and readiness: `/healthz` says the process and its event loop answer
(restart it if not); `/readyz` says it can do its work right now — broker, database and,
for the services that handle twins, the Docker engine all answer (send it no traffic if not).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from schemas.stages import StageName

log = logging.getLogger("patchtwin.http")

Check = Callable[[], Awaitable[bool]]

#: `patchtwin up`'s port; `patchtwin service NAME` takes the next ones, in stage order.
BASE_PORT = 8080


def default_port(services: tuple[str, ...]) -> int:
    """A port per service, so five `patchtwin service NAME` processes on one host all serve."""
    if len(services) == 1 and services[0] in tuple(StageName):
        return BASE_PORT + 1 + tuple(StageName).index(StageName(services[0]))
    return BASE_PORT


class Endpoints:
    """An aiohttp server on `host:port` (port 0: any free one); `url` once started, also
    written to `record` (a JSON file) while it serves, so a free port can be found."""

    def __init__(self, host: str, port: int, services: tuple[str, ...], checks: Mapping[str, Check],
                 record: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.services = services
        self.checks = dict(checks)
        self.record = record
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> Endpoints:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            # A busy port must not stop the services themselves (two `patchtwin up` on one
            # machine); the missing endpoint shows as a failing healthcheck instead.
            log.error("no HTTP endpoint: cannot listen on %s:%s: %s", self.host, self.port, exc)
            await runner.cleanup()
            return self
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.url = f"http://{shown}:{port}"
        log.info("HTTP endpoint at %s (/healthz /readyz /metrics)", self.url)
        if self.record is not None:
            _write_record(self.record, {"services": list(self.services), "url": self.url, "pid": os.getpid()})
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            if self.record is not None:
                _remove_record(self.record)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "services": list(self.services)})

    async def readyz(self, request: web.Request) -> web.Response:
        results = dict(zip(self.checks, await asyncio.gather(*(_bounded(c) for c in self.checks.values())),
                           strict=True))
        ready = all(results.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _bounded(check: Check, timeout_s: float = 3.0) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout_s)
    except Exception as exc:
        log.debug("readiness check %s failed: %r", getattr(check, "__name__", check), exc)
        return False


def _write_record(path: Path, record: dict[str, object]) -> None:
    """Written whole (a rename), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(record))
    partial.replace(path)


def _remove_record(path: Path) -> None:
    """Only this process's record: a later process of the same name may have replaced it."""
    try:
        ours = json.loads(path.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError) as exc:
        log.warning("HTTP endpoint record %s not removed: %s", path, exc)
        return
    if ours:
        path.unlink(missing_ok=True)
