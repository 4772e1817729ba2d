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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiodocker
from aiodocker.exceptions import DockerError

from patchtwin.exceptions import ImageUnavailable, TransientError, TwinLost, TwinStartFailed
from patchtwin.observability.telemetry import traced_twin_op
from patchtwin.twins.runtime import (
    DEFAULT_CAPABILITIES,
    LABEL_CREATED,
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_RUN,
    SUPERVISE,
    SUPERVISOR,
    SUPERVISOR_DIR,
    CappedBuffer,
    ExecResult,
    Hardening,
    TwinLimits,
    parse_status,
)
from schemas.asset import Asset
from schemas.events import TwinRef

__all__ = [
    "DEFAULT_CAPABILITIES",
    "LABEL_CREATED",
    "LABEL_EXPIRES",
    "LABEL_INSTANCE",
    "LABEL_OWNER",
    "LABEL_RUN",
    "CopiedOut",
    "DockerRuntime",
    "ExecResult",
    "Hardening",
    "TwinLimits",
    "twin_name",
]

LABEL_NETWORK = "io.patchtwin.network"
#: What the engine makes read-only by default (moby's oci defaults); setting the list replaces it.
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def host_config(limits: TwinLimits, hardening: Hardening, network: str = "none") -> dict[str, Any]:
    """The container's HostConfig: every setting docs/isolation.md explains, nothing from
    the host (no binds, no devices, no socket), the engine's default seccomp profile."""
    mib = 1024 * 1024
    config: dict[str, Any] = {
        "NetworkMode": network,
        "Privileged": False,
        "Binds": [],
        "Mounts": [],
        "Devices": [],
        "IpcMode": "private",
        "Memory": limits.memory_mb * mib,
        "MemorySwap": limits.memory_mb * mib,  # equal: no swap beyond the memory limit
        "NanoCpus": int(limits.cpus * 1e9),
        "PidsLimit": limits.pids,
        "CapDrop": ["ALL"],
        "CapAdd": list(hardening.capabilities),
        "SecurityOpt": ["no-new-privileges"] if hardening.no_new_privileges else [],
        "Ulimits": [
            {"Name": "nofile", "Soft": hardening.nofile, "Hard": hardening.nofile},
            {"Name": "fsize", "Soft": hardening.fsize_mb * mib, "Hard": hardening.fsize_mb * mib},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ],
        "Tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={hardening.tmpfs_mb}m,mode=1777"},
        "ShmSize": hardening.tmpfs_mb * mib,
        # the engine's defaults, plus the cgroup tree's writable top (a tmpfs in cgroup v1)
        "ReadonlyPaths": [*DEFAULT_READONLY_PATHS, "/sys/fs/cgroup"],
        "Dns": ["127.0.0.1"],  # not the host's resolvers: nothing to learn about the host
        "OomScoreAdj": 500,  # under host memory pressure the kernel kills twins first
        "Init": True,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": f"{hardening.log_max_mb}m", "max-file": "1"}},
    }
    if hardening.runtime:
        config["Runtime"] = hardening.runtime
    return config


@dataclass(frozen=True)
class CopiedOut:
    """Files read out of a twin: regular files only, by their path inside the archive.
    `refused` names members that were not read (links, devices, absolute or `..` paths)."""

    files: dict[str, bytes]
    refused: list[str]
    truncated: bool


def read_archive(data: bytes, *, max_bytes: int, max_members: int = 10_000) -> CopiedOut:
    """Reads a tar that came out of a twin as hostile: nothing is written to disk and no link
    is followed; a member is kept only when it is a regular file under a relative path without
    `..`; the content kept is at most `max_bytes` in all."""
    files: dict[str, bytes] = {}
    refused: list[str] = []
    truncated = False
    kept = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for count, member in enumerate(tar):
                if count >= max_members:
                    truncated = True
                    break
                name = member.name
                parts = name.split("/")
                if member.isdir() and name.strip("/") in ("", "."):
                    continue
                if name.startswith("/") or "\\" in name or ".." in parts or not name.strip("/."):
                    refused.append(name)
                    continue
                if member.isdir():
                    continue
                if not member.isreg():
                    refused.append(name)
                    continue
                room = max_bytes - kept
                if member.size > room:
                    truncated = True
                stream = tar.extractfile(member)
                content = stream.read(max(room, 0)) if stream is not None else b""
                files["/".join(p for p in parts if p not in ("", "."))] = content
                kept += len(content)
    except (tarfile.TarError, EOFError):
        truncated = True  # the archive was cut (our cap) or is malformed: keep what was read
    return CopiedOut(files=files, refused=refused, truncated=truncated)


def archive(files: Sequence[tuple[str, bytes, int]], folders: Sequence[tuple[str, int]] = ()) -> bytes:
    """A tar of files (absolute path, content, mode) to unpack at `/`. Folder entries only for
    `folders` (path, mode): an entry resets an existing folder's owner and mode."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, mode in folders:
            folder = tarfile.TarInfo(_member(path))
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(folder)
        for path, content, mode in files:
            info = tarfile.TarInfo(_member(path))
            info.size, info.mode, info.mtime = len(content), mode, now
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _member(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/") or not parts or ".." in parts or "." in parts:
        raise ValueError(f"not an absolute path without '.' or '..': {path!r}")
    return "/".join(parts)


def network_name(twin: str) -> str:
    return f"{twin}-net"


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

    @traced_twin_op("create")  # observe
    async def create(
        self, run_id: str, image: str, *, limits: TwinLimits, ttl_s: int, keep_existing: bool = False,
        hardening: Hardening | None = None, asset: Asset | None = None,
    ) -> TwinRef:
        """Creates and starts the run's twin, hardened; a leftover of an interrupted attempt is
        replaced. The environment is the image's alone: nothing of patchtwin's enters it.
        (`asset` is for runtimes with per-asset options; Docker's come in `limits` and `hardening`.)"""
        hardening = hardening or Hardening()
        if not await self.image_exists(image):
            raise ImageUnavailable(f"image {image!r} is not on this Docker engine")
        name = twin_name(run_id, self.instance)
        if not keep_existing:
            await self.destroy(name)
        created = datetime.now(UTC)
        labels = {
            LABEL_RUN: run_id,
            LABEL_OWNER: self.owner,
            LABEL_INSTANCE: self.instance,
            LABEL_CREATED: created.isoformat(),
            LABEL_EXPIRES: (created + timedelta(seconds=ttl_s)).isoformat(),
        }
        network = "none"
        try:
            if hardening.network == "internal":
                network = await self._internal_network(name, labels)
            config: dict[str, Any] = {
                "Image": image,
                "Cmd": ["sleep", "infinity"],
                "Hostname": "twin",
                "Env": [],
                "Labels": {**labels, LABEL_NETWORK: network},
                "HostConfig": host_config(limits, hardening, network),
            }
            container = await self.docker.containers.create(config=config, name=name)
            await container.start()
        except DockerError as exc:
            if _transient(exc):
                raise TransientError(f"docker: {exc.message}") from exc
            raise TwinStartFailed(f"could not start twin from {image}: {exc.message}") from exc
        return TwinRef(id=container.id, name=name, image=image, isolation=hardening.report(limits))

    async def _internal_network(self, twin: str, labels: dict[str, str]) -> str:
        """A bridge of the run's own: `Internal` (no route out) and without an IPv4 address on
        the host side (`inhibit_ipv4`), else the twin could reach the host at the gateway."""
        name = network_name(twin)
        try:
            await self.docker.networks.create({
                "Name": name, "Driver": "bridge", "Internal": True, "CheckDuplicate": True,
                "EnableIPv6": False, "Labels": labels,
                "Options": {"com.docker.network.bridge.inhibit_ipv4": "true",
                            "com.docker.network.bridge.enable_ip_masquerade": "false"},
            })
        except DockerError as exc:
            if exc.status != 409:  # already there: a retry of this run
                raise
        return name

    @traced_twin_op("exec")  # observe
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
        """Copies files (path, content, mode) in with one archive. The archive has no folder
        entries, so existing folders keep their owner and mode (an entry would reset them);
        missing ones are created owned by root, mode 0755. Not into a tmpfs mount (Docker's
        archive API writes beneath it)."""
        await self._put_archive(twin.name if isinstance(twin, TwinRef) else twin, archive(files))

    @traced_twin_op("copy_in")  # observe
    async def _put_archive(self, name: str, data: bytes) -> None:
        try:
            await self.docker.containers.container(name).put_archive("/", data)
        except DockerError as exc:
            if exc.status == 404:
                raise TwinLost(f"cannot copy into {name}: {exc.message}") from exc
            if _transient(exc):
                raise TransientError(f"docker: {exc.message}") from exc
            raise

    async def read_file(self, twin: TwinRef | str, path: str, limit: int = 1024 * 1024) -> bytes | None:
        """A regular file's content (at most `limit` bytes), or None when it is not there or
        not a regular file. Read as hostile (`copy_out`): never more than `limit` and a little
        archive is transferred, and a symlink planted in its place is not followed."""
        try:
            copied = await self.copy_out(twin, path, max_bytes=limit)
        except TwinLost:
            return None
        return next(iter(copied.files.values())) if len(copied.files) == 1 else None

    @traced_twin_op("supervise")  # observe
    async def run_supervised(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = 1024 * 1024,
        user: str = "",
        grace_s: float = 5.0,
        files: Sequence[tuple[str, bytes, int]] = (),
    ) -> ExecResult:
        """Runs a patch with every ending told apart; `files` are copied in first, with the
        supervisor (the patch script itself, say).

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
        await self._put_supervisor(name, supervisor_path, files)
        limit = f"{max(timeout_s, 0.01):.3f}"
        wrapped = ["/bin/sh", "-c", SUPERVISE, supervisor_path, limit, status_path, *argv]
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
        status = parse_status(await self.read_file(name, status_path, limit=4096))
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

    async def _put_supervisor(self, name: str, supervisor_path: str, files: Sequence[tuple[str, bytes, int]]) -> None:
        """The supervisor, its status folder and the patch's `files`, in one archive (one API
        call per patch). A user patch must be able to write its status: the folder is sticky and
        world-writable."""
        folders = ((SUPERVISOR_DIR, 0o755), (f"{SUPERVISOR_DIR}/status", 0o1777))
        await self._put_archive(name, archive([(supervisor_path, SUPERVISOR, 0o755), *files], folders=folders))

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

    @traced_twin_op("copy_out")  # observe
    async def copy_out(self, twin: TwinRef | str, path: str, *, max_bytes: int = 1024 * 1024) -> CopiedOut:
        """Files at `path` in the twin (a file or a folder), read as hostile (`read_archive`);
        at most `max_bytes` of content and a little more of archive are ever transferred."""
        name = twin.name if isinstance(twin, TwinRef) else twin
        limit = max_bytes + 1024 * 1024  # room for the tar headers of the kept files
        chunks: list[bytes] = []
        received = 0
        cut = False
        try:
            async with self.docker._query(
                f"containers/{name}/archive", method="GET", params={"path": path}
            ) as response:
                while chunk := await response.content.read(64 * 1024):
                    chunks.append(chunk[: limit - received])
                    received += len(chunks[-1])
                    if received >= limit:
                        cut = True
                        break
        except DockerError as exc:
            if exc.status == 404 and "container" in exc.message.lower():
                raise TwinLost(f"cannot copy {path} out of {name}: {exc.message}") from exc
            if exc.status == 404:
                return CopiedOut(files={}, refused=[], truncated=False)
            raise
        copied = read_archive(b"".join(chunks), max_bytes=max_bytes)
        return CopiedOut(copied.files, copied.refused, copied.truncated or cut)

    @traced_twin_op("destroy")  # observe
    async def destroy(self, name: str) -> bool:
        """Removes a twin, running or not, and its run's network if it had one. False when
        there was no twin."""
        try:
            await self.docker.containers.container(name).delete(force=True, v=True)
            removed = True
        except DockerError as exc:
            if exc.status == 404:
                removed = False
            elif exc.status == 409:  # removal already in progress (another janitor): wait for it
                await self._gone(name)
                removed = True
            else:
                raise
        try:
            await (await self.docker.networks.get(network_name(name))).delete()
        except DockerError as exc:
            if exc.status not in (404, 409):
                raise
        return removed

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

    async def events(self) -> AsyncIterator[dict[str, str]]:
        """The labels (and `name`) of this instance's twins as they stop, die or are OOM-killed,
        as the engine reports it; ends when the engine's event stream ends."""
        filters = {
            "type": ["container"],
            "event": ["die", "oom", "stop"],
            "label": [f"{LABEL_OWNER}={self.owner}", f"{LABEL_INSTANCE}={self.instance}"],
        }
        events = aiodocker.Docker(url=self._url)  # its own connection: the stream never ends
        try:
            subscriber = events.events.subscribe(filters=json.dumps(filters))
            while (event := await subscriber.get()) is not None:
                yield dict((event.get("Actor") or {}).get("Attributes") or {})
        finally:
            await events.events.stop()
            await events.close()

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


#: kept for callers of the old private name
_CappedBuffer = CappedBuffer
