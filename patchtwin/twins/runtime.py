"""What every twin runtime offers, so the pipeline never knows which one it talks to.

DockerRuntime is the reference implementation; a runtime is picked per request
(`asset.runtime`) by the provisioner and found again from the twin's `TwinRef.runtime`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Protocol, runtime_checkable

from patchtwin.exceptions import TwinLost
from patchtwin.settings import Settings
from patchtwin.twins.archives import CopiedOut, read_archive
from schemas.asset import Asset
from schemas.events import Isolation, TwinRef

log = logging.getLogger("patchtwin.twins")

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


#: What a twin may still do as root after dropping ALL capabilities (docs/isolation.md):
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
    """How a command in the twin ended. `exit_code` is None when a signal ended it (`signal`)
    or when nobody saw it end (`abandoned`: the exec outlived its deadline plus grace)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    stderr_bytes: int
    duration_s: float
    timed_out: bool
    signal: int | None = None
    oom_killed: bool = False
    abandoned: bool = False
    #: "supervisor" (exact wait status, cgroup OOM counter), "timeout" (the twin had no perl:
    #: exit-code heuristics), "backstop" (abandoned), "exec" (the plain probe path).
    observed_by: str = "exec"
    #: Either stream passed the cap: its middle was cut (see `CappedBuffer`).
    truncated: bool = False


#: What is kept of each output stream of an exec when the caller names no cap: the patch's
#: configured default (`Settings.patch_output_cap_bytes`), so there is one such number.
DEFAULT_OUTPUT_CAP: int = Settings.model_fields["patch_output_cap_bytes"].default
#: How much of a file `read_file` returns when the caller names no limit.
DEFAULT_READ_LIMIT = 1024 * 1024

#: Put where a stream's middle was cut; not counted as output.
CUT_MARKER = b"\n[patchtwin: output cut here]\n"


class CappedBuffer:
    """Keeps at most `cap` bytes of a stream, its first half and its last half (the end of a
    failing script's output is where the error is), and counts all of them: output is
    bounded, and the verdict can still say how much there was."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._head = bytearray()
        self._tail = bytearray()
        self._head_cap = cap - cap // 2
        self._tail_cap = cap // 2

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_cap > 0:
            self._tail += chunk
            if len(self._tail) > self._tail_cap:
                del self._tail[: len(self._tail) - self._tail_cap]  # O(1): bytearray trims its front

    @property
    def cut(self) -> bool:
        return self.total > self.cap

    def data(self) -> bytes:
        if not self.cut:
            return bytes(self._head + self._tail)
        return bytes(self._head) + CUT_MARKER + bytes(self._tail)


#: Where the patch and its supervisor are copied in the twin (in the image's own filesystem,
#: never a tmpfs: `docker cp` cannot reach into a tmpfs mount).
SUPERVISOR_DIR = "/opt/patchtwin"
SUPERVISOR = resources.files("patchtwin.twins").joinpath("supervise.pl").read_bytes()
#: Runs the perl supervisor where perl exists, and plain `timeout` where it does not:
#: sh -c SUPERVISE SUPERVISOR_PATH LIMIT_S STATUS_FILE ARGV...
SUPERVISE = (
    'if command -v perl >/dev/null 2>&1; then exec perl "$0" "$@"; fi\n'
    'limit=$1; shift 2; exec timeout -s KILL "$limit" "$@"\n'
)


def parse_status(raw: bytes | None) -> dict[str, Any] | None:
    """The supervisor's status line, or None when there is none (no perl, or it was removed)."""
    if not raw:
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


def twin_name(run_id: str, instance: str = "default", *, prefix: str = "patchtwin") -> str:
    """A valid container name for a run id, distinct per instance (so one stack never
    replaces another stack's twin of a run with the same id)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80]
    digest = hashlib.sha256(f"{instance}\0{run_id}".encode()).hexdigest()[:8]
    return f"{prefix}-{safe}-{digest}"


def labels(run_id: str, *, owner: str, instance: str, ttl_s: int) -> dict[str, str]:
    """The labels the janitor finds a container by after any crash: run, owner, instance, expiry."""
    created = datetime.now(UTC)
    return {
        LABEL_RUN: run_id,
        LABEL_OWNER: owner,
        LABEL_INSTANCE: instance,
        LABEL_CREATED: created.isoformat(),
        LABEL_EXPIRES: (created + timedelta(seconds=ttl_s)).isoformat(),
    }


#: A runtime's own exec, for the helpers below that build an operation out of it.
ExecFn = Callable[..., Awaitable["ExecResult"]]


async def copy_out_with_exec(exec_fn: ExecFn, twin: TwinRef | str, path: str, *, max_bytes: int) -> CopiedOut:
    """`copy_out` for a runtime that has only exec: the files at `path` (a file or a folder) as
    a tar made inside the twin, named like Docker's archive (from the path's last component)
    and read as hostile (`read_archive`); a path that is not there gives no files."""
    parent, base = posixpath.split(posixpath.normpath("/" + path))
    script = 'cd "$1" 2>/dev/null && [ -e "$2" ] || exit 0; exec tar -c -f - -- "$2"'
    result = await exec_fn(twin, ["sh", "-c", script, "sh", parent, base or "."], timeout_s=60,
                           output_cap=max_bytes + 1024 * 1024)
    if not result.stdout_bytes:
        return CopiedOut(files={}, refused=[], truncated=False)
    copied = read_archive(result.stdout, max_bytes=max_bytes)
    return CopiedOut(copied.files, copied.refused, copied.truncated or result.truncated)


async def read_file_by_copy_out(
    copy_out: Callable[..., Awaitable[CopiedOut]], twin: TwinRef | str, path: str, limit: int
) -> bytes | None:
    """`read_file` through a runtime's `copy_out`: a regular file's content (at most `limit`
    bytes), or None when it is not there or not a regular file. Read as hostile: never more
    than `limit` and a little archive is transferred, and a symlink in its place is not followed."""
    try:
        copied = await copy_out(twin, path, max_bytes=limit)
    except TwinLost as exc:
        log.info("%s not read: %s", path, exc)
        return None
    return next(iter(copied.files.values())) if len(copied.files) == 1 else None


async def supervise_with_exec(
    runtime: TwinRuntime,
    twin: TwinRef | str,
    argv: Sequence[str],
    *,
    timeout_s: float,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    user: str = "",
    grace_s: float = 5.0,
    files: Sequence[tuple[str, bytes, int]] = (),
) -> ExecResult:
    """`run_supervised` for a runtime that has only exec and file copies: the same supervisor,
    its status read back with one more exec; the runtime's own exec deadline (`timeout_s` +
    `grace_s`) is the backstop. No outside OOM source: the cgroup counter only."""
    # /tmp: writable by any user, and read back with exec (a tmpfs is no obstacle to that)
    status_path = f"/tmp/.patchtwin-status-{uuid.uuid4().hex[:16]}.json"
    supervisor_path = f"{SUPERVISOR_DIR}/supervise.pl"
    await runtime.put_files(twin, [(supervisor_path, SUPERVISOR, 0o755), *files])
    limit = f"{max(timeout_s, 0.01):.3f}"
    wrapped = ["/bin/sh", "-c", SUPERVISE, supervisor_path, limit, status_path, *argv]
    result = await runtime.exec(twin, wrapped, timeout_s=timeout_s + grace_s, output_cap=output_cap, user=user,
                                grace_s=grace_s)
    status = parse_status(await runtime.read_file(twin, status_path, limit=4096)) if result.exit_code is not None \
        else None
    ending: dict[str, Any]
    if status is not None:
        oom = status.get("oom_kills")
        ending = {"exit_code": status.get("exit_code"), "signal": status.get("signal"),
                  "duration_s": float(status.get("duration_s") or result.duration_s),
                  "timed_out": bool(status.get("timed_out")), "oom_killed": isinstance(oom, int) and oom > 0,
                  "observed_by": "supervisor"}
    elif result.exit_code is None:
        ending = {"exit_code": None, "duration_s": result.duration_s, "timed_out": True, "abandoned": True,
                  "observed_by": "backstop"}
    else:
        timed_out = result.exit_code == 137 and result.duration_s >= timeout_s - 0.05
        ending = {"exit_code": None if timed_out else result.exit_code, "signal": 9 if timed_out else None,
                  "duration_s": result.duration_s, "timed_out": timed_out, "observed_by": "timeout"}
    return ExecResult(stdout=result.stdout, stderr=result.stderr, stdout_bytes=result.stdout_bytes,
                      stderr_bytes=result.stderr_bytes, truncated=result.truncated, **ending)


@dataclass(frozen=True)
class Helper:
    """A short-lived container beside the twins, from a twin's image but with a network (a
    twin never has one): it runs `argv`, what it leaves at `collect` is read out (as hostile),
    and it is removed. `caches` (volume name, mount path) outlive it, for the next helper."""

    role: str
    image: str
    argv: tuple[str, ...]
    collect: str
    caches: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HelperResult:
    exit_code: int | None
    #: the last lines it wrote (stdout and stderr), for an error message
    logs: str
    #: what was at `Helper.collect` when it ended (nothing when it failed)
    collected: CopiedOut


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

    async def pull_image(self, image: str, tag_as: str) -> None:
        """Pulls `image` from its registry and tags it `tag_as` (ImageUnavailable when it cannot)."""
        ...

    async def build_image(self, context: bytes, tag: str, *, labels: Mapping[str, str] | None = None) -> None:
        """Builds a tar build context (with its Dockerfile) as `tag`; ImageBuildFailed carries
        the build's output in `details["output"]`."""
        ...

    async def import_rootfs(self, rootfs: AsyncIterable[bytes], tag: str, *, cmd: Sequence[str]) -> None:
        """Makes the image `tag`, running `cmd` by default, from a root filesystem's tar stream
        (`docker import`)."""
        ...

    async def run_helper(self, run_id: str, helper: Helper, *, timeout_s: float, ttl_s: int,
                         max_bytes: int) -> HelperResult:
        """Runs a helper to its end and removes it; TimeoutError when it outlives `timeout_s`
        (removed then too; else the janitor finds it by its labels after `ttl_s`)."""
        ...

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
        output_cap: int = DEFAULT_OUTPUT_CAP,
        user: str = "",
        grace_s: float = 5.0,
    ) -> ExecResult: ...

    async def put_file(self, twin: TwinRef | str, path: str, content: bytes, mode: int = 0o644) -> None: ...

    async def put_files(self, twin: TwinRef | str, files: Sequence[tuple[str, bytes, int]]) -> None: ...

    async def read_file(self, twin: TwinRef | str, path: str, limit: int = DEFAULT_READ_LIMIT) -> bytes | None: ...

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
        """Runs a patch with every ending told apart (exit code vs signal, timeout with the
        process group killed inside the twin, OOM from the twin's memory cgroup); `files` are
        copied in first, with the supervisor."""
        ...

    async def destroy(self, name: str) -> bool: ...

    async def list_ours(self, run_id: str | None = None) -> list[dict[str, Any]]: ...

    async def destroy_run(self, run_id: str) -> list[str]: ...
