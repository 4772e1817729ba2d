"""Twins as Docker containers (aiodocker): create hardened, exec with limits, destroy; and the
engine's images and helper containers, so every Docker call goes through this runtime.

Every container carries labels (`io.patchtwin.*`) naming its run, owner, instance and expiry,
so the janitor can find it again after any crash without a database; a runtime only ever lists
(and so removes) containers of its own instance. Engine errors become patchtwin's in one place
(`docker_errors`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError

from patchtwin.exceptions import ImageUnavailable, TwinLost, TwinStartFailed
from patchtwin.observability.telemetry import traced_twin_op
from patchtwin.twins import docker_images
from patchtwin.twins.archives import CopiedOut, archive, read_archive
from patchtwin.twins.docker_config import LABEL_NETWORK, helper_config, host_config, network_name
from patchtwin.twins.docker_errors import engine_error, engine_errors
from patchtwin.twins.runtime import (
    DEFAULT_CAPABILITIES,
    DEFAULT_OUTPUT_CAP,
    DEFAULT_READ_LIMIT,
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
    Helper,
    HelperResult,
    TwinLimits,
    labels,
    parse_status,
    read_file_by_copy_out,
    twin_name,
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
    "host_config",
    "network_name",
    "twin_name",
]

log = logging.getLogger("patchtwin.docker")



@dataclass(frozen=True)
class _Streamed:
    """An exec's capped output and how it ended: `exit_code` None when it was abandoned at
    its deadline (Docker cannot kill an exec; the caller decides what stops it)."""

    out: CappedBuffer
    err: CappedBuffer
    exit_code: int | None
    duration_s: float

    def result(self, **ending: Any) -> ExecResult:
        return ExecResult(stdout=self.out.data(), stderr=self.err.data(), stdout_bytes=self.out.total,
                          stderr_bytes=self.err.total, truncated=self.out.cut or self.err.cut, **ending)


def _name(twin: TwinRef | str) -> str:
    return twin.name if isinstance(twin, TwinRef) else twin


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
        except Exception as exc:
            log.info("docker engine %s does not answer: %s", self._url or "(default)", exc)
            return False

    # -- images ----------------------------------------------------------------------------

    async def image_exists(self, image: str) -> bool:
        return await docker_images.exists(self.docker, image)

    async def pull_image(self, image: str, tag_as: str) -> None:
        await docker_images.pull(self.docker, image, tag_as)

    async def build_image(self, context: bytes, tag: str, *, labels: Mapping[str, str] | None = None) -> None:
        await docker_images.build(self.docker, context, tag, labels)

    async def import_rootfs(self, rootfs: AsyncIterable[bytes], tag: str, *, cmd: Sequence[str]) -> None:
        await docker_images.import_rootfs(self.docker, rootfs, tag, cmd)

    def save_image(self, image: str) -> AsyncIterator[bytes]:
        """The image as a `docker save` stream, to `load_image` on another engine."""
        return docker_images.save(self.docker, image)

    async def load_image(self, images: AsyncIterable[bytes]) -> None:
        await docker_images.load(self.docker, images)

    # -- twins -----------------------------------------------------------------------------

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
        twin_labels = labels(run_id, owner=self.owner, instance=self.instance, ttl_s=ttl_s)
        network = "none"
        with engine_errors(f"start a twin from {image}", failure=TwinStartFailed):
            if hardening.network == "internal":
                network = await self._internal_network(name, twin_labels)
            config: dict[str, Any] = {
                "Image": image,
                "Cmd": ["sleep", "infinity"],
                "Hostname": "twin",
                "Env": [],
                "Labels": {**twin_labels, LABEL_NETWORK: network},
                "HostConfig": host_config(limits, hardening, network),
            }
            container = await self.docker.containers.create(config=config, name=name)
            await container.start()
        return TwinRef(id=container.id, name=name, image=image, isolation=hardening.report(limits))

    async def _internal_network(self, twin: str, twin_labels: dict[str, str]) -> str:
        """A bridge of the run's own: `Internal` (no route out) and without an IPv4 address on
        the host side (`inhibit_ipv4`), else the twin could reach the host at the gateway."""
        name = network_name(twin)
        try:
            await self.docker.networks.create({
                "Name": name, "Driver": "bridge", "Internal": True, "CheckDuplicate": True,
                "EnableIPv6": False, "Labels": twin_labels,
                "Options": {"com.docker.network.bridge.inhibit_ipv4": "true",
                            "com.docker.network.bridge.enable_ip_masquerade": "false"},
            })
        except DockerError as exc:
            if exc.status != 409:  # already there: a retry of this run
                raise
        return name

    # -- exec ------------------------------------------------------------------------------

    async def _stream_exec(self, name: str, argv: Sequence[str], *, user: str, output_cap: int,
                           deadline_s: float) -> _Streamed:
        """Runs argv in the twin and streams its output into capped buffers until it ends, or
        abandons it `deadline_s` after the start: the one exec path, plain and supervised."""
        self.exec_count += 1
        started = time.monotonic()
        out, err = CappedBuffer(output_cap), CappedBuffer(output_cap)
        with engine_errors(f"exec in twin {name}", gone=TwinLost):
            execution = await self.docker.containers.container(name).exec(list(argv), stdout=True, stderr=True,
                                                                          user=user)

            async def pump() -> None:
                async with execution.start(detach=False, timeout=None) as stream:
                    while (message := await stream.read_out()) is not None:
                        (out if message.stream == 1 else err).add(message.data)

            try:
                await asyncio.wait_for(pump(), timeout=deadline_s)
            except TimeoutError:
                return _Streamed(out, err, None, time.monotonic() - started)
            duration = time.monotonic() - started
            info = await execution.inspect()
        return _Streamed(out, err, info.get("ExitCode"), duration)

    @traced_twin_op("exec")  # observe
    async def exec(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        user: str = "",
        grace_s: float = 5.0,
    ) -> ExecResult:
        """Runs argv in the twin, killed inside at `timeout_s` and abandoned outside after grace."""
        wrapped = ["timeout", "-s", "KILL", f"{max(timeout_s, 0.1):.3f}", *argv]
        run = await self._stream_exec(_name(twin), wrapped, user=user, output_cap=output_cap,
                                      deadline_s=timeout_s + grace_s)
        # `timeout -s KILL` exits 137 when the deadline killed the command.
        timed_out = run.exit_code is None or (run.exit_code == 137 and run.duration_s >= timeout_s - 0.05)
        return run.result(exit_code=run.exit_code, duration_s=run.duration_s, timed_out=timed_out)

    @traced_twin_op("supervise")  # observe
    async def run_supervised(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = DEFAULT_OUTPUT_CAP,
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
        name = _name(twin)
        status_path = f"{SUPERVISOR_DIR}/status/{uuid.uuid4().hex[:16]}.json"
        supervisor_path = f"{SUPERVISOR_DIR}/supervise.pl"
        await self._put_supervisor(name, supervisor_path, files)
        limit = f"{max(timeout_s, 0.01):.3f}"
        wrapped = ["/bin/sh", "-c", SUPERVISE, supervisor_path, limit, status_path, *argv]
        since = time.time()
        run = await self._stream_exec(name, wrapped, user=user, output_cap=output_cap, deadline_s=timeout_s + grace_s)
        if run.exit_code is None:
            # the supervisor did not end it: abandon the exec and stop the twin itself
            await self._kill(name)
            return run.result(exit_code=None, duration_s=run.duration_s, timed_out=True, abandoned=True,
                              observed_by="backstop")
        status = parse_status(await self.read_file(name, status_path, limit=4096))
        if status is not None:
            oom = status.get("oom_kills")
            return run.result(
                exit_code=status.get("exit_code"), signal=status.get("signal"),
                duration_s=float(status.get("duration_s") or run.duration_s),
                timed_out=bool(status.get("timed_out")),
                oom_killed=oom > 0 if isinstance(oom, int) else await self._oom_event(name, since),
                observed_by="supervisor",
            )
        # no status: no perl in the twin (or the patch removed it): `timeout`'s exit code
        timed_out = run.exit_code == 137 and run.duration_s >= timeout_s - 0.05
        return run.result(
            exit_code=None if timed_out else run.exit_code, signal=9 if timed_out else None,
            duration_s=run.duration_s, timed_out=timed_out, oom_killed=await self._oom_event(name, since),
            observed_by="timeout",
        )

    async def _kill(self, name: str) -> None:
        try:
            await self.docker.containers.container(name).kill(signal="SIGKILL")
        except DockerError as exc:  # already stopped or gone: what the kill was for
            log.info("twin %s: not killed: %s", name, engine_error(exc, f"kill {name}"))

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
        except DockerError as exc:
            log.warning("twin %s: no OOM events to read: %s", name, exc)
            return False
        return any(line.strip() for line in body.splitlines())

    # -- files -----------------------------------------------------------------------------

    async def put_file(self, twin: TwinRef | str, path: str, content: bytes, mode: int = 0o644) -> None:
        """Copies a file in, creating its parent folders (owned by root, mode 0755)."""
        await self.put_files(twin, [(path, content, mode)])

    async def put_files(self, twin: TwinRef | str, files: Sequence[tuple[str, bytes, int]]) -> None:
        """Copies files (path, content, mode) in with one archive. The archive has no folder
        entries, so existing folders keep their owner and mode (an entry would reset them);
        missing ones are created owned by root, mode 0755. Not into a tmpfs mount (Docker's
        archive API writes beneath it)."""
        await self._put_archive(_name(twin), archive(files))

    @traced_twin_op("copy_in")  # observe
    async def _put_archive(self, name: str, data: bytes) -> None:
        with engine_errors(f"copy into twin {name}", gone=TwinLost):
            await self.docker.containers.container(name).put_archive("/", data)

    async def read_file(self, twin: TwinRef | str, path: str, limit: int = DEFAULT_READ_LIMIT) -> bytes | None:
        """A regular file's content, or None (`read_file_by_copy_out`)."""
        return await read_file_by_copy_out(self.copy_out, twin, path, limit)

    @traced_twin_op("copy_out")  # observe
    async def copy_out(self, twin: TwinRef | str, path: str, *, max_bytes: int = DEFAULT_READ_LIMIT) -> CopiedOut:
        """Files at `path` in the twin (a file or a folder), read as hostile (`read_archive`);
        at most `max_bytes` of content and a little more of archive are ever transferred."""
        name = _name(twin)
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
            if exc.status == 404 and "container" not in exc.message.lower():
                return CopiedOut(files={}, refused=[], truncated=False)  # the path is not there
            raise engine_error(exc, f"copy {path} out of {name}", gone=TwinLost) from exc
        copied = read_archive(b"".join(chunks), max_bytes=max_bytes)
        return CopiedOut(copied.files, copied.refused, copied.truncated or cut)

    async def usage(self, twin: str) -> tuple[int, float]:
        """A twin's memory in use (bytes) and CPU time so far (seconds), in one stats call:
        one-shot, so the engine answers at once instead of waiting a second for a CPU delta
        (aiodocker's stats(stream=False) reads a stream and finds no sample in it)."""
        with engine_errors(f"stats of {twin}", gone=TwinLost):
            sample = await self.docker._query_json(f"containers/{twin}/stats", params={"stream": "0", "one-shot": "1"})
        memory = int((sample.get("memory_stats") or {}).get("usage") or 0)
        cpu_ns = int(((sample.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0)
        return memory, cpu_ns / 1e9

    # -- helpers ---------------------------------------------------------------------------

    async def run_helper(self, run_id: str, helper: Helper, *, timeout_s: float, ttl_s: int,
                         max_bytes: int) -> HelperResult:
        """Runs a helper container (`docker_config.helper_config`) to its end, reads `collect`
        out of it when it ended well, and removes it (else the janitor does, by its labels)."""
        config = helper_config(helper, labels(run_id, owner=self.owner, instance=self.instance, ttl_s=ttl_s))
        container: DockerContainer | None = None
        try:
            with engine_errors(f"helper {helper.role} from {helper.image}", failure=TwinStartFailed):
                container = await self.docker.containers.create(config=config)
                await container.start()
                status = await asyncio.wait_for(container.wait(), timeout=timeout_s)
                exit_code = status.get("StatusCode")
                if exit_code != 0:
                    logs = "".join(await container.log(stdout=True, stderr=True, tail=20))
                    return HelperResult(exit_code, logs, CopiedOut(files={}, refused=[], truncated=False))
            return HelperResult(0, "", await self.copy_out(container.id, helper.collect, max_bytes=max_bytes))
        finally:
            if container is not None:
                await self._remove(container.id)

    async def _remove(self, name: str) -> None:
        try:
            await self.docker.containers.container(name).delete(force=True, v=True)
        except DockerError as exc:  # the janitor removes it later, by its labels and expiry
            log.warning("container %s not removed: %s", name, exc)

    # -- teardown and listing --------------------------------------------------------------

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
                raise engine_error(exc, f"remove twin {name}") from exc
        try:
            await (await self.docker.networks.get(network_name(name))).delete()
        except DockerError as exc:
            if exc.status not in (404, 409):
                raise engine_error(exc, f"remove network of {name}") from exc
        return removed

    async def _gone(self, name: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                await self.docker.containers.get(name)
            except DockerError as exc:
                if exc.status == 404:
                    return
                raise engine_error(exc, f"inspect twin {name}") from exc
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
        wanted = [f"{LABEL_OWNER}={self.owner}", f"{LABEL_INSTANCE}={self.instance}"]
        if run_id is not None:
            wanted.append(f"{LABEL_RUN}={run_id}")
        with engine_errors("list twins"):
            containers = await self.docker.containers.list(all=True, filters={"label": wanted})
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
