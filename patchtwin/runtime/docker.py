"""Twins as Docker containers (aiodocker): create hardened, exec with limits, destroy.

Every twin carries labels (`io.patchtwin.*`) naming its run, owner, instance and expiry, so
the janitor can find it again after any crash without a database; a runtime only ever lists
(and so removes) twins of its own instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import re
import tarfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import aiodocker
from aiodocker.exceptions import DockerError

from patchtwin.exceptions import ImageUnavailable, TransientError, TwinLost, TwinStartFailed
from patchtwin.runtime.base import (
    LABEL_CREATED,
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_RUN,
    CappedBuffer,
    ExecResult,
    TwinLimits,
)
from schemas.events import TwinRef

__all__ = [
    "LABEL_CREATED",
    "LABEL_EXPIRES",
    "LABEL_INSTANCE",
    "LABEL_OWNER",
    "LABEL_RUN",
    "DockerRuntime",
    "ExecResult",
    "TwinLimits",
    "twin_name",
]

#: What a twin may still do as root: enough for package managers and sysv services
#: (chown files, switch to a service user, bind port 80, signal its own processes).
DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL")


#: Where the patch and its supervisor are copied in the twin (in the image's own filesystem,
#: never a tmpfs: `docker cp` cannot reach into a tmpfs mount).
SUPERVISOR_DIR = "/opt/patchtwin"
SUPERVISOR = resources.files("patchtwin.runtime").joinpath("supervise.pl").read_bytes()
#: Runs the perl supervisor where perl exists, and plain `timeout` where it does not.
_SUPERVISE = (
    'if command -v perl >/dev/null 2>&1; then exec perl "$0" "$@"; fi\n'
    'limit=$1; shift 2; exec timeout -s KILL "$limit" "$@"\n'
)


def twin_name(run_id: str, instance: str = "default") -> str:
    """A valid container name for a run id, distinct per instance (so one stack never
    replaces another stack's twin of a run with the same id)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80]
    digest = hashlib.sha256(f"{instance}\0{run_id}".encode()).hexdigest()[:8]
    return f"patchtwin-{safe}-{digest}"


def _transient(exc: DockerError) -> bool:
    return exc.status >= 500 or exc.status == 429


class DockerRuntime:
    """The Docker engine as a twin runtime. `exec_count` counts every exec, for tests."""

    name = "docker"

    def __init__(self, url: str | None = None, owner: str = "patchtwin", instance: str = "default") -> None:
        self._url = url
        self.owner = owner
        self.instance = instance
        self._docker: aiodocker.Docker | None = None
        self.exec_count = 0

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self._url)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def ping(self) -> bool:
        try:
            await self.docker.version()
            return True
        except Exception:
            return False

    async def image_exists(self, image: str) -> bool:
        try:
            await self.docker.images.inspect(image)
            return True
        except DockerError as exc:
            if exc.status == 404:
                return False
            raise

    async def create(
        self, run_id: str, image: str, *, limits: TwinLimits, ttl_s: int, keep_existing: bool = False
    ) -> TwinRef:
        """Creates and starts the run's twin; a leftover of an interrupted attempt is replaced."""
        if not await self.image_exists(image):
            raise ImageUnavailable(f"image {image!r} is not on this Docker engine")
        name = twin_name(run_id, self.instance)
        if not keep_existing:
            await self.destroy(name)
        created = datetime.now(UTC)
        config: dict[str, Any] = {
            "Image": image,
            "Cmd": ["sleep", "infinity"],
            "Hostname": "twin",
            "Labels": {
                LABEL_RUN: run_id,
                LABEL_OWNER: self.owner,
                LABEL_INSTANCE: self.instance,
                LABEL_CREATED: created.isoformat(),
                LABEL_EXPIRES: (created + timedelta(seconds=ttl_s)).isoformat(),
            },
            "HostConfig": {
                "NetworkMode": "none",
                "Memory": limits.memory_mb * 1024 * 1024,
                "MemorySwap": limits.memory_mb * 1024 * 1024,
                "NanoCpus": int(limits.cpus * 1e9),
                "PidsLimit": limits.pids,
                "CapDrop": ["ALL"],
                "CapAdd": list(DEFAULT_CAPABILITIES),
                "SecurityOpt": ["no-new-privileges"],
                "Init": True,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}},
            },
        }
        try:
            container = await self.docker.containers.create(config=config, name=name)
            await container.start()
        except DockerError as exc:
            if _transient(exc):
                raise TransientError(f"docker: {exc.message}") from exc
            raise TwinStartFailed(f"could not start twin from {image}: {exc.message}") from exc
        return TwinRef(id=container.id, name=name, image=image)

    async def exec(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = 1024 * 1024,
        user: str = "",
        grace_s: float = 5.0,
    ) -> ExecResult:
        """Runs argv in the twin, killed inside at `timeout_s` and abandoned outside after grace."""
        name = twin.name if isinstance(twin, TwinRef) else twin
        wrapped = ["timeout", "-s", "KILL", f"{max(timeout_s, 0.1):.3f}", *argv]
        self.exec_count += 1
        started = time.monotonic()
        try:
            container = self.docker.containers.container(name)
            execution = await container.exec(wrapped, stdout=True, stderr=True, user=user)
        except DockerError as exc:
            if exc.status == 404 or exc.status == 409:
                raise TwinLost(f"twin {name} is gone or stopped: {exc.message}") from exc
            if _transient(exc):
                raise TransientError(f"docker: {exc.message}") from exc
            raise
        out = CappedBuffer(output_cap)
        err = CappedBuffer(output_cap)
        timed_out = False

        async def pump() -> None:
            async with execution.start(detach=False, timeout=None) as stream:
                while (message := await stream.read_out()) is not None:
                    (out if message.stream == 1 else err).add(message.data)

        try:
            await asyncio.wait_for(pump(), timeout=timeout_s + grace_s)
        except TimeoutError:
            timed_out = True
        duration = time.monotonic() - started
        exit_code: int | None = None
        if not timed_out:
            info = await execution.inspect()
            exit_code = info.get("ExitCode")
            # `timeout -s KILL` exits 137 when the deadline killed the command.
            timed_out = exit_code == 137 and duration >= timeout_s - 0.05
        return ExecResult(
            exit_code=exit_code,
            stdout=out.data(),
            stderr=err.data(),
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            duration_s=duration,
            timed_out=timed_out,
            truncated=out.cut or err.cut,
        )

    async def put_file(self, twin: TwinRef | str, path: str, content: bytes, mode: int = 0o644) -> None:
        """Copies a file in, creating its parent folders (owned by root, mode 0755)."""
        await self.put_files(twin, [(path, content, mode)])

    async def put_files(self, twin: TwinRef | str, files: Sequence[tuple[str, bytes, int]]) -> None:
        """Copies files (path, content, mode) in with one archive; missing parent folders are
        created owned by root, mode 0755. Existing folders keep their mode."""
        name = twin.name if isinstance(twin, TwinRef) else twin
        buffer = io.BytesIO()
        now = int(time.time())
        folders: set[str] = set()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, content, mode in files:
                parts = [p for p in path.split("/") if p]
                if not path.startswith("/") or not parts or ".." in parts or "." in parts:
                    raise ValueError(f"not an absolute path without '.' or '..': {path!r}")
                for depth in range(1, len(parts)):
                    folder_name = "/".join(parts[:depth])
                    if folder_name not in folders:
                        folders.add(folder_name)
                        folder = tarfile.TarInfo(folder_name)
                        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, now
                        tar.addfile(folder)
                info = tarfile.TarInfo("/".join(parts))
                info.size, info.mode, info.mtime = len(content), mode, now
                tar.addfile(info, io.BytesIO(content))
        container = self.docker.containers.container(name)
        try:
            await container.put_archive("/", buffer.getvalue())
        except DockerError as exc:
            if exc.status == 404:
                raise TwinLost(f"cannot copy into {name}: {exc.message}") from exc
            if _transient(exc):
                raise TransientError(f"docker: {exc.message}") from exc
            raise

    async def read_file(self, twin: TwinRef | str, path: str, limit: int = 1024 * 1024) -> bytes | None:
        """A regular file's content (at most `limit` bytes), or None when it is not there."""
        name = twin.name if isinstance(twin, TwinRef) else twin
        try:
            archive = await self.docker.containers.container(name).get_archive(path)
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise
        with archive:
            member = archive.next()
            if member is None or not member.isfile():
                return None
            handle = archive.extractfile(member)
            return handle.read(limit) if handle is not None else None

    async def run_supervised(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = 1024 * 1024,
        user: str = "",
        grace_s: float = 5.0,
    ) -> ExecResult:
        """Runs a patch with every ending told apart.

        Inside the twin, a supervisor (supervise.pl) runs argv in a new session, kills the
        session's processes at `timeout_s`, and records the raw wait status (exit code or
        signal) and the memory cgroup's OOM-kill counter. Outside, the exec is abandoned and
        the twin killed when it has not ended `grace_s` after the deadline: the backstop for a
        supervisor that could not act. A twin without perl falls back to `timeout -s KILL`,
        its exit code, and Docker's `oom` events."""
        name = twin.name if isinstance(twin, TwinRef) else twin
        nonce = uuid.uuid4().hex[:16]
        status_path = f"{SUPERVISOR_DIR}/status/{nonce}.json"
        supervisor_path = f"{SUPERVISOR_DIR}/supervise.pl"
        await self.put_files(name, [(supervisor_path, SUPERVISOR, 0o755)])
        # a user patch must be able to write its status: a sticky, world-writable folder
        await self._ensure_status_dir(name)
        limit = f"{max(timeout_s, 0.01):.3f}"
        wrapped = ["/bin/sh", "-c", _SUPERVISE, supervisor_path, limit, status_path, *argv]
        self.exec_count += 1
        since = time.time()
        started = time.monotonic()
        container = self.docker.containers.container(name)
        try:
            execution = await container.exec(wrapped, stdout=True, stderr=True, user=user)
        except DockerError as exc:
            if exc.status in (404, 409):
                raise TwinLost(f"twin {name} is gone or stopped: {exc.message}") from exc
            if _transient(exc):
                raise TransientError(f"docker: {exc.message}") from exc
            raise
        out, err = CappedBuffer(output_cap), CappedBuffer(output_cap)

        async def pump() -> None:
            async with execution.start(detach=False, timeout=None) as stream:
                while (message := await stream.read_out()) is not None:
                    (out if message.stream == 1 else err).add(message.data)

        def result(**ending: Any) -> ExecResult:
            return ExecResult(stdout=out.data(), stderr=err.data(), stdout_bytes=out.total,
                              stderr_bytes=err.total, truncated=out.cut or err.cut, **ending)

        try:
            await asyncio.wait_for(pump(), timeout=timeout_s + grace_s)
        except TimeoutError:
            # the supervisor did not end it: abandon the exec and stop the twin itself
            with contextlib.suppress(DockerError):
                await container.kill(signal="SIGKILL")
            return result(exit_code=None, duration_s=time.monotonic() - started, timed_out=True,
                          abandoned=True, observed_by="backstop")
        duration = time.monotonic() - started
        info = await execution.inspect()
        status = _parse_status(await self.read_file(name, status_path, limit=4096))
        if status is not None:
            oom = status.get("oom_kills")
            return result(
                exit_code=status.get("exit_code"), signal=status.get("signal"),
                duration_s=float(status.get("duration_s") or duration),
                timed_out=bool(status.get("timed_out")),
                oom_killed=oom > 0 if isinstance(oom, int) else await self._oom_event(name, since),
                observed_by="supervisor",
            )
        # no status: no perl in the twin (or the patch removed it): `timeout`'s exit code
        exit_code = info.get("ExitCode")
        timed_out = exit_code == 137 and duration >= timeout_s - 0.05
        return result(
            exit_code=None if timed_out else exit_code, signal=9 if timed_out else None,
            duration_s=duration, timed_out=timed_out, oom_killed=await self._oom_event(name, since),
            observed_by="timeout",
        )

    async def _ensure_status_dir(self, name: str) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for folder_name, mode in ((SUPERVISOR_DIR.strip("/"), 0o755), (f"{SUPERVISOR_DIR.strip('/')}/status",
                                                                            0o1777)):
                folder = tarfile.TarInfo(folder_name)
                folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, mode, int(time.time())
                tar.addfile(folder)
        try:
            await self.docker.containers.container(name).put_archive("/", buffer.getvalue())
        except DockerError as exc:
            if exc.status == 404:
                raise TwinLost(f"cannot copy into {name}: {exc.message}") from exc
            raise

    async def _oom_event(self, name: str, since: float) -> bool:
        """Whether Docker reported an `oom` event for the twin since `since` (a past window:
        the events endpoint answers and closes)."""
        params = {
            "since": f"{since - 1:.3f}",
            "until": f"{time.time() + 0.5:.3f}",
            "filters": json.dumps({"container": [name], "event": ["oom"]}),
        }
        try:
            async with self.docker._query("events", params=params) as response:
                body = await response.read()
        except DockerError:
            return False
        return any(line.strip() for line in body.splitlines())

    async def destroy(self, name: str) -> bool:
        """Removes a twin, running or not. False when there was none."""
        try:
            await self.docker.containers.container(name).delete(force=True, v=True)
            return True
        except DockerError as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:  # removal already in progress (another janitor): wait for it
                await self._gone(name)
                return True
            raise

    async def _gone(self, name: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                await self.docker.containers.get(name)
            except DockerError as exc:
                if exc.status == 404:
                    return
                raise
            await asyncio.sleep(0.1)

    async def list_ours(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Containers carrying our owner and instance labels (and the run's label when given)."""
        labels = [f"{LABEL_OWNER}={self.owner}", f"{LABEL_INSTANCE}={self.instance}"]
        if run_id is not None:
            labels.append(f"{LABEL_RUN}={run_id}")
        containers = await self.docker.containers.list(all=True, filters={"label": labels})
        return [
            {
                "id": c["Id"],
                "name": c["Names"][0].lstrip("/") if c.get("Names") else c["Id"],
                "labels": c.get("Labels") or {},
                "state": c.get("State"),
            }
            for c in (container._container for container in containers)
        ]

    async def destroy_run(self, run_id: str) -> list[str]:
        names = [c["name"] for c in await self.list_ours(run_id)]
        for name in names:
            await self.destroy(name)
        return names


def _parse_status(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


#: kept for callers of the old private name
_CappedBuffer = CappedBuffer
