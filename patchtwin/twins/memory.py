"""A TEST DOUBLE of a twin runtime: twins as folders on this machine, no Docker, no cluster.

NOT FOR PRODUCTION, and no isolation worth the name. Each twin is a scratch folder that is
its root, and one long-lived holder process in private mount, UTS, network and PID
namespaces, chrooted into that folder. The host's `/usr` is bind-mounted read-only, so a
program in the twin runs the host's own bash, coreutils, perl and dpkg-query; everything
else it sees (`/etc`, `/var`, `/run`, `/opt`, `/tmp`, `/proc` of its own PID namespace, an
empty network with only loopback) is the twin's. Services are stand-ins from the image
(an init script and a small perl daemon standing in for nginx): `service nginx stop` really
stops a process, its port really stops listening, and the checks see exactly that. The
package database is the twin's own `/var/lib/dpkg/status`, read by the host's dpkg-query.

What it is not: a security boundary (root in a chroot can leave it, and the twin shares the
host's kernel, cgroups and users); it enforces no resource limits, capabilities or
hardening (it reports the Hardening asked for, unapplied); it pulls and builds no images
(`MemoryImage`s are registered in its `MemoryEngine`); twins live as long as the engine's
process. Needs Linux with `unshare`, `nsenter` and `chroot` (util-linux), as root or with
user namespaces (then only uid 0 exists in the twin).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from patchtwin.exceptions import ImageUnavailable, RuntimeUnavailable, TwinLost, TwinStartFailed
from patchtwin.twins.archives import CopiedOut, archive
from patchtwin.twins.runtime import (
    DEFAULT_OUTPUT_CAP,
    DEFAULT_READ_LIMIT,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_RUN,
    CappedBuffer,
    ExecResult,
    Hardening,
    Helper,
    HelperResult,
    TwinLimits,
    copy_out_with_exec,
    labels,
    read_file_by_copy_out,
    supervise_with_exec,
    twin_name,
)
from schemas.asset import Asset
from schemas.events import TwinRef

#: What a program in the twin finds on PATH, as in the Debian images.
TWIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Runs "$@" as user $0 with the user's own group and groups, as Docker's `exec --user` does.
AS_USER = 'exec setpriv --reuid="$0" --regid="$(id -g "$0")" --init-groups -- "$@"'

#: Run by `unshare` as the holder: the twin's mounts, loopback and hostname, then a chroot.
HOLDER = """set -e
root=$1
mount -t tmpfs -o mode=755,size=1m tmpfs "$root/dev"
for d in null zero full random urandom tty; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
ln -s /proc/self/fd "$root/dev/fd"
mkdir -m 1777 "$root/dev/shm"
mount --rbind /usr "$root/usr"
mount -o remount,bind,ro "$root/usr"
mount -t proc proc "$root/proc"
ip link set lo up
hostname twin
exec chroot "$root" /usr/bin/perl -MPOSIX=WNOHANG -e "$INIT"
"""
#: The twin's PID 1 (Docker's `Init: true`): reaps every orphan, so a stopped service leaves no zombie.
INIT = '$0 = "twin-init"; $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 }; sleep 3600 while 1;'


#: Stands in for nginx: serves the default page over HTTP on port 80, one request at a time.
#: Its file name makes its process name (comm) `nginx`.
NGINX_DAEMON = b"""#!/usr/bin/perl
# patchtwin in-memory twin: a stand-in for nginx, not nginx.
use strict; use warnings; use IO::Socket::INET;
my $server = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => 80, Listen => 16, ReuseAddr => 1)
    or die "nginx stand-in: bind :80: $!\\n";
while (my $client = $server->accept) {
    while (my $line = <$client>) { last if $line =~ /^\\r?\\n$/ }
    my $body = '';
    if (open my $page, '<', '/var/www/html/index.nginx-debian.html') { local $/; $body = <$page> }
    print $client "HTTP/1.1 200 OK\\r\\nServer: nginx\\r\\nContent-Type: text/html\\r\\n"
        . 'Content-Length: ' . length($body) . "\\r\\nConnection: close\\r\\n\\r\\n" . $body;
    close $client;
}
"""

#: A sysv init script for the stand-in, with the LSB exit codes of `status`.
NGINX_INIT = b"""#!/bin/sh
pidfile=/run/nginx.pid
running() { [ -f $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null; }
case $1 in
  start) running || { setsid /opt/stand-ins/nginx </dev/null >>/var/log/nginx.log 2>&1 & echo $! > $pidfile; } ;;
  stop) running && kill "$(cat $pidfile)"; rm -f $pidfile ;;
  restart|reload) $0 stop; $0 start ;;
  status) if running; then echo "nginx is running."; exit 0; fi
          if [ -f $pidfile ]; then echo "nginx is not running but the pid file exists."; exit 1; fi
          echo "nginx is not running."; exit 3 ;;
  *) echo "Usage: $0 {start|stop|restart|reload|status}" >&2; exit 2 ;;
esac
"""

BASE_PACKAGES = {"base-files": "12.4+deb12u5", "bash": "5.2.15-2+b7", "coreutils": "9.1-1",
                 "dpkg": "1.21.22", "perl-base": "5.36.0-7+deb12u1"}


@dataclass(frozen=True)
class MemoryImage:
    """What a twin starts from: files (path → content, mode) and installed packages."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)

    def dpkg_status(self) -> bytes:
        """The packages as dpkg's database (`/var/lib/dpkg/status`), for dpkg-query."""
        return "".join(
            f"Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: misc\n"
            f"Maintainer: patchtwin <patchtwin@localhost>\nArchitecture: all\nVersion: {version}\n"
            f"Description: in-memory twin stand-in for {name}\n\n"
            for name, version in sorted(self.packages.items())
        ).encode()


#: The Debian images the pipeline asks for, as stand-ins: a bare one and one with "nginx".
STAND_IN_IMAGES = {
    "patchtwin/debian:12": MemoryImage(packages=BASE_PACKAGES),
    "patchtwin/debian-nginx:12": MemoryImage(
        files={"/etc/init.d/nginx": (NGINX_INIT, 0o755), "/opt/stand-ins/nginx": (NGINX_DAEMON, 0o755),
               "/var/www/html/index.nginx-debian.html": (b"<h1>Welcome to nginx!</h1>\n", 0o644)},
        packages={**BASE_PACKAGES, "nginx": "1.22.1-9", "nginx-common": "1.22.1-9"},
    ),
}


@dataclass
class MemoryTwin:
    """One twin: its root folder, its holder process (the namespaces' init), its labels."""

    ref: TwinRef
    labels: dict[str, str]
    root: Path
    holder: asyncio.subprocess.Process
    pid: int  # the holder's chrooted child, whose namespaces every exec enters

    @property
    def running(self) -> bool:
        return self.holder.returncode is None


class MemoryEngine:
    """What Docker's engine is to DockerRuntime: the images and twins of every MemoryRuntime
    sharing it (so one runtime's `list_ours` must tell its twins from another instance's)."""

    def __init__(self, images: dict[str, MemoryImage] | None = None) -> None:
        self.images = dict(STAND_IN_IMAGES if images is None else images)
        self.twins: dict[str, MemoryTwin] = {}

    async def close(self) -> None:
        """Removes every twin: the double's twins never outlive its engine."""
        for name in list(self.twins):
            await self.remove(name)

    async def remove(self, name: str) -> bool:
        twin = self.twins.pop(name, None)
        if twin is None:
            return False
        if twin.running:  # SIGKILL to unshare: --kill-child kills the PID namespace's init, and so all in it
            twin.holder.kill()
        await twin.holder.wait()
        # the bind mounts were in the holder's mount namespace, gone with it: only the twin's files remain
        shutil.rmtree(twin.root, ignore_errors=True)
        return True


class MemoryRuntime:
    """The in-memory test double of a twin runtime (see the module docstring).

    `name` is the runtime it stands in for, because `TwinRef.runtime` and `asset.runtime`
    are part of the wire contract and name only real runtimes: a pipeline given this double
    as its "docker" runtime is the production pipeline, with twins in folders."""

    def __init__(self, engine: MemoryEngine | None = None, *, owner: str = "patchtwin", instance: str = "default",
                 name: Literal["docker", "kubernetes"] = "docker") -> None:
        self.engine = engine or MemoryEngine()
        self._owns_engine = engine is None
        self._stands_in_for = name
        self.name: str = name
        self.owner = owner
        self.instance = instance
        self.exec_count = 0

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.close()

    async def ping(self) -> bool:
        return True

    async def image_exists(self, image: str) -> bool:
        return image in self.engine.images

    # The double's images are registered in its engine (`MemoryImage`); it makes none itself,
    # and refuses with the codes the Kubernetes runtime uses for the same steps.

    async def pull_image(self, image: str, tag_as: str) -> None:
        raise ImageUnavailable(f"the in-memory runtime pulls no images ({image}): register a MemoryImage")

    async def build_image(self, context: bytes, tag: str, *, labels: Mapping[str, str] | None = None) -> None:
        raise ImageUnavailable(f"the in-memory runtime builds no images ({tag}): register a MemoryImage")

    async def import_rootfs(self, rootfs: AsyncIterable[bytes], tag: str, *, cmd: Sequence[str]) -> None:
        raise ImageUnavailable(f"the in-memory runtime imports no images ({tag}): register a MemoryImage")

    async def run_helper(self, run_id: str, helper: Helper, *, timeout_s: float, ttl_s: int,
                         max_bytes: int) -> HelperResult:
        raise RuntimeUnavailable(f"the in-memory runtime runs no helper containers ({helper.role})")

    async def create(
        self, run_id: str, image: str, *, limits: TwinLimits, ttl_s: int, keep_existing: bool = False,
        hardening: Hardening | None = None, asset: Asset | None = None,
    ) -> TwinRef:
        """A fresh root from the image, and the holder in its namespaces; a leftover of an
        earlier attempt is replaced. `limits` and `hardening` are reported, not enforced."""
        found = self.engine.images.get(image)
        if found is None:
            raise ImageUnavailable(f"image {image!r} is not registered in this in-memory engine")
        name = twin_name(run_id, self.instance, prefix="memtwin")
        if not keep_existing:
            await self.destroy(name)
        root = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        _lay_out(root, found)
        holder = await asyncio.create_subprocess_exec(
            "unshare", *_userns(), "--mount", "--uts", "--net", "--pid", "--fork", "--kill-child",
            "--propagation", "private", "env", f"INIT={INIT}", "sh", "-c", HOLDER, "holder", str(root),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            pid = await _chrooted_child(holder, root)
        except TwinStartFailed:
            shutil.rmtree(root, ignore_errors=True)
            raise
        twin_labels = labels(run_id, owner=self.owner, instance=self.instance, ttl_s=ttl_s)
        ref = TwinRef(runtime=self._stands_in_for, id=f"{pid}-{root.name}", name=name, image=image,
                      isolation=(hardening or Hardening()).report(limits))
        self.engine.twins[name] = MemoryTwin(ref=ref, labels=twin_labels, root=root, holder=holder, pid=pid)
        return ref

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
        """Runs argv in the twin, killed inside at `timeout_s` (`timeout -s KILL`, as Docker's
        exec), and the whole exec's process group killed if it outlives that by `grace_s`."""
        return await self._run(twin, argv, timeout_s=timeout_s, output_cap=output_cap, user=user, grace_s=grace_s)

    async def _run(self, twin: TwinRef | str, argv: Sequence[str], *, timeout_s: float, output_cap: int,
                   user: str = "", grace_s: float = 5.0, stdin: bytes | None = None) -> ExecResult:
        found = self._twin(twin)
        as_user = ["sh", "-c", AS_USER, user] if user else []
        command = [
            "nsenter", f"--target={found.pid}", *(["--user"] if _userns() else []), "--mount", "--uts", "--net",
            "--pid", "--root", "--wd", "--", "env", "-i", f"PATH={TWIN_PATH}", "HOME=/root", "HOSTNAME=twin",
            "timeout", "-s", "KILL", f"{max(timeout_s, 0.1):.3f}", *as_user, *argv,
        ]
        self.exec_count += 1
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
        out, err = CappedBuffer(output_cap), CappedBuffer(output_cap)

        async def pump(stream: asyncio.StreamReader | None, into: CappedBuffer) -> None:
            assert stream is not None
            while chunk := await stream.read(64 * 1024):
                into.add(chunk)

        async def feed() -> None:
            if stdin is not None and process.stdin is not None:
                process.stdin.write(stdin)
                await process.stdin.drain()
                process.stdin.close()

        try:
            *_, returncode = await asyncio.wait_for(
                asyncio.gather(feed(), pump(process.stdout, out), pump(process.stderr, err), process.wait()),
                timeout=timeout_s + grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return ExecResult(exit_code=None, stdout=out.data(), stderr=err.data(), stdout_bytes=out.total,
                              stderr_bytes=err.total, duration_s=time.monotonic() - started, timed_out=True,
                              truncated=out.cut or err.cut)
        duration = time.monotonic() - started
        if not found.running:
            raise TwinLost(f"twin {found.ref.name} went away during the exec")
        # nsenter dies of its child's signal: reported as a shell (and Docker's exec) would, 128 + signal;
        # `timeout -s KILL` ends so (137) when the deadline killed the command.
        code = returncode if returncode >= 0 else 128 - returncode
        return ExecResult(exit_code=code, stdout=out.data(), stderr=err.data(), stdout_bytes=out.total,
                          stderr_bytes=err.total, duration_s=duration,
                          timed_out=code == 137 and duration >= timeout_s - 0.05,
                          truncated=out.cut or err.cut)

    def _twin(self, twin: TwinRef | str) -> MemoryTwin:
        name = twin.name if isinstance(twin, TwinRef) else twin
        found = self.engine.twins.get(name)
        if found is None or not found.running:
            raise TwinLost(f"twin {name} is gone or stopped")
        return found

    async def put_file(self, twin: TwinRef | str, path: str, content: bytes, mode: int = 0o644) -> None:
        await self.put_files(twin, [(path, content, mode)])

    async def put_files(self, twin: TwinRef | str, files: Sequence[tuple[str, bytes, int]]) -> None:
        """Copies files in as one tar unpacked inside the twin (so a symlink the twin planted
        resolves in the twin's root, never the host's); missing folders are made 0755."""
        data = archive(files)
        result = await self._run(twin, ["tar", "-x", "-p", "-m", "-o", "-C", "/", "-f", "-"], timeout_s=60,
                                 output_cap=64 * 1024, stdin=data)
        if result.exit_code != 0:
            raise TwinLost(f"cannot copy files into the twin: exit {result.exit_code}: "
                           f"{result.stderr.decode(errors='replace')[:300]}")

    async def read_file(self, twin: TwinRef | str, path: str, limit: int = DEFAULT_READ_LIMIT) -> bytes | None:
        """A regular file's content, or None (`read_file_by_copy_out`)."""
        return await read_file_by_copy_out(self.copy_out, twin, path, limit)

    async def copy_out(self, twin: TwinRef | str, path: str, *, max_bytes: int = DEFAULT_READ_LIMIT) -> CopiedOut:
        """Files at `path` as a tar made inside the twin (`copy_out_with_exec`)."""
        return await copy_out_with_exec(self._run, twin, path, max_bytes=max_bytes)

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
        """The same supervisor as every runtime's, run with exec; the OOM counter it reads is
        the host's cgroup's (the double has no memory cgroup of its own)."""
        return await supervise_with_exec(self, twin, argv, timeout_s=timeout_s, output_cap=output_cap, user=user,
                                         grace_s=grace_s, files=files)

    async def destroy(self, name: str) -> bool:
        """Kills the twin's processes and removes its root, by name as Docker does; False
        when there was no twin."""
        return await self.engine.remove(name)

    def _ours(self, labels: dict[str, str], run_id: str | None = None) -> bool:
        return (labels.get(LABEL_OWNER) == self.owner and labels.get(LABEL_INSTANCE) == self.instance
                and (run_id is None or labels.get(LABEL_RUN) == run_id))

    async def list_ours(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Twins of the engine carrying our owner and instance labels (and the run's, when given)."""
        return [
            {"id": twin.ref.id, "name": name, "labels": dict(twin.labels),
             "state": "running" if twin.running else "exited"}
            for name, twin in list(self.engine.twins.items()) if self._ours(twin.labels, run_id)
        ]

    async def destroy_run(self, run_id: str) -> list[str]:
        names = [row["name"] for row in await self.list_ours(run_id)]
        for name in names:
            await self.destroy(name)
        return names


def _userns() -> list[str]:
    """Without root, a user namespace maps us to root in the twin (the only user there)."""
    return [] if os.geteuid() == 0 else ["--user", "--map-root-user"]


def _lay_out(root: Path, image: MemoryImage) -> None:
    """The twin's root before it starts: the usual folders, `/usr` links as on merged-/usr
    Debian, users, the package database, and the image's files."""
    root.chmod(0o755)  # mkdtemp made it 0700: every user of the twin must reach its files
    for folder in ("usr", "proc", "dev", "etc", "root", "run", "opt", "srv", "var/log", "var/lib/dpkg/updates",
                   "var/lib/dpkg/info", "var/tmp", "tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for link in ("bin", "sbin", "lib", "lib64"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")
    (root / "etc/hostname").write_text("twin\n")
    (root / "var/lib/dpkg/status").write_bytes(image.dpkg_status())
    (root / "var/lib/dpkg/available").write_bytes(b"")
    for path, (content, mode) in image.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)


async def _chrooted_child(holder: asyncio.subprocess.Process, root: Path, timeout_s: float = 10.0) -> int:
    """The pid of the holder's child once it has chrooted into `root` (exec enters its namespaces)."""
    deadline = time.monotonic() + timeout_s
    children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
    while time.monotonic() < deadline:
        if holder.returncode is not None:
            break
        with contextlib.suppress(OSError, ValueError):
            for pid in children.read_text().split():
                if os.readlink(f"/proc/{pid}/root") == str(root):
                    return int(pid)
        await asyncio.sleep(0.02)
    if holder.returncode is None:
        holder.kill()
    _, why = await holder.communicate()
    raise TwinStartFailed(f"the in-memory twin's namespaces did not start: {why.decode(errors='replace')[:500]}")
