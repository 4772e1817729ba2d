"""What every twin runtime offers, so the pipeline never knows which one it talks to.

DockerRuntime is the reference implementation; a runtime is picked per request
(`asset.runtime`) by the provisioner and found again from the twin's `TwinRef.runtime`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from schemas.events import TwinRef

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
        self, run_id: str, image: str, *, limits: TwinLimits, ttl_s: int, keep_existing: bool = False
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
