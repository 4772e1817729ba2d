"""What every twin runtime offers, so the pipeline never knows which one it talks to.

DockerRuntime is the reference implementation; a runtime is picked per request
(`asset.runtime`) by the provisioner and found again from the twin's `TwinRef.runtime`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from schemas.asset import Asset
from schemas.events import Isolation, TwinRef

#: Keys of the labels (Docker) or labels/annotations (Kubernetes) every twin carries, so the
#: janitor finds it again after any crash without a database. `list_ours` reports them
#: under these keys whatever the runtime stores.
LABEL_RUN = "io.patchtwin.run-id"
LABEL_OWNER = "io.patchtwin.owner"
LABEL_CREATED = "io.patchtwin.created-at"
LABEL_EXPIRES = "io.patchtwin.expires-at"
#: Names the deployment (Settings.instance): a runtime lists, and so a janitor removes, only
#: twins of its own instance, so stacks sharing one engine or cluster never sweep each other's.
LABEL_INSTANCE = "io.patchtwin.instance"


@dataclass(frozen=True)
class TwinLimits:
    cpus: float = 2.0
    memory_mb: int = 4096
    pids: int = 1024


#: What a twin may still do as root after dropping ALL capabilities (README "Isolation"):
#: CHOWN            dpkg and services chown files to their users (www-data, _apt);
#: DAC_OVERRIDE     root reads and writes files it does not own (dpkg, editing service files);
#: FOWNER           chmod/utime of files owned by service users (dpkg, logrotate, `touch`);
#: SETUID, SETGID   nginx's workers, apt's `_apt` sandbox and `su`-less init scripts switch user;
#: NET_BIND_SERVICE services bind ports below 1024 (nginx on 80);
#: KILL             `service ... stop/reload` signals daemons running as another user.
DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL")


@dataclass(frozen=True)
class Hardening:
    """A twin's confinement beyond its resource limits, whatever the runtime: the defaults
    are the hardened twin; `relaxed` names what an asset loosened, for the verdict."""

    network: str = "none"  # "none" or "internal" (a network of the run's own, host unreachable)
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    no_new_privileges: bool = True
    runtime: str | None = None  # an OCI runtime the engine knows, e.g. "runsc" (gVisor)
    nofile: int = 4096
    fsize_mb: int = 1024
    tmpfs_mb: int = 64
    log_max_mb: int = 1
    relaxed: tuple[str, ...] = field(default=())

    def report(self, limits: TwinLimits) -> Isolation:
        return Isolation(
            network=self.network, capabilities=list(self.capabilities),
            no_new_privileges=self.no_new_privileges, runtime=self.runtime,
            memory_mb=limits.memory_mb, cpus=limits.cpus, pids=limits.pids, tmpfs_mb=self.tmpfs_mb,
            nofile=self.nofile, fsize_mb=self.fsize_mb, relaxed=list(self.relaxed),
        )


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    stderr_bytes: int
    duration_s: float
    timed_out: bool

    @property
    def truncated(self) -> bool:
        return self.stdout_bytes > len(self.stdout) or self.stderr_bytes > len(self.stderr)


class CappedBuffer:
    """Keeps the first `cap` bytes of a stream and counts all of them: output is bounded,
    and the verdict can still say how much there was."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._chunks: list[bytes] = []
        self._kept = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - self._kept
        if room > 0:
            piece = chunk[:room]
            self._chunks.append(piece)
            self._kept += len(piece)

    def data(self) -> bytes:
        return b"".join(self._chunks)


@runtime_checkable
class TwinRuntime(Protocol):
    """The operations the five services use. `name` is what `asset.runtime` and
    `TwinRef.runtime` say; `list_ours` rows have `id`, `name`, `labels` and `state`."""

    name: str
    owner: str
    instance: str

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def image_exists(self, image: str) -> bool: ...

    async def create(
        self, run_id: str, image: str, *, limits: TwinLimits, ttl_s: int, keep_existing: bool = False,
        hardening: Hardening | None = None, asset: Asset | None = None,
    ) -> TwinRef: ...

    async def exec(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = 1024 * 1024,
        user: str = "",
        grace_s: float = 5.0,
    ) -> ExecResult: ...

    async def put_file(self, twin: TwinRef | str, path: str, content: bytes, mode: int = 0o644) -> None: ...

    async def destroy(self, name: str) -> bool: ...

    async def list_ours(self, run_id: str | None = None) -> list[dict[str, Any]]: ...

    async def destroy_run(self, run_id: str) -> list[str]: ...
