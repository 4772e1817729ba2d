"""Platform → image, and the local base images built with debootstrap (no registry needed)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from patchtwin.exceptions import ImageUnavailable
from patchtwin.twins import TwinRuntime
from patchtwin.twins.platforms import PLATFORMS, PlatformSpec

log = logging.getLogger("patchtwin.twins.images")

DEBIAN_RELEASES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
MIRROR = "http://deb.debian.org/debian"
#: What every base gets beyond minbase: the tools the probe and service managers use.
BASE_PACKAGES = ("iproute2", "procps")
WEB_PACKAGES = ("nginx", "openssl")


def base_ref(version: str) -> str:
    return f"patchtwin/debian:{version}"


def web_ref(version: str) -> str:
    return f"patchtwin/debian-nginx:{version}"


async def _run(*argv: str, stdin: bytes | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate(stdin)
    if process.returncode != 0:
        raise ImageUnavailable(
            f"{argv[0]} failed ({process.returncode}): {output.decode(errors='replace')[-1500:]}"
        )


@contextlib.asynccontextmanager
async def build_lock(state_dir: Path, name: str = "images.lock") -> AsyncIterator[None]:
    """One build of a kind at a time on this machine, whichever process asks; waiting for it
    happens in a thread, so the service's event loop keeps serving meanwhile."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / name, "w") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def build_base(platform: str | PlatformSpec, runtime: TwinRuntime, state_dir: Path) -> str:
    """debootstrap a Debian-family release into a folder and `docker import` it (about 40 s).

    `platform` is a Debian version ("12") or any platform spec with a debootstrap suite.
    """
    spec = platform if isinstance(platform, PlatformSpec) else PLATFORMS.get(("debian", platform))
    if spec is None or spec.suite is None or spec.mirror is None:
        known = sorted(DEBIAN_RELEASES)
        raise ImageUnavailable(f"no local build for {platform}; debian versions known: {known}")
    ref = spec.local_ref
    if await runtime.image_exists(ref):
        return ref
    if shutil.which("debootstrap") is None:
        raise ImageUnavailable("debootstrap is not installed: `apt-get install debootstrap`")
    async with build_lock(state_dir):
        if await runtime.image_exists(ref):
            return ref
        with tempfile.TemporaryDirectory(prefix="patchtwin-rootfs-", dir=state_dir) as root:
            log.info("building %s with debootstrap", ref)
            argv = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}"]
            if spec.keyring:
                argv.append(f"--keyring={spec.keyring}")
            argv += [spec.suite, root, spec.mirror]
            script = Path("/usr/share/debootstrap/scripts", spec.suite)
            if not script.exists():  # a release newer than this debootstrap: same layout as gutsy
                argv.append("/usr/share/debootstrap/scripts/gutsy")
            await _run(*argv)
            archives = Path(root, "var/cache/apt/archives")
            for deb in archives.glob("*.deb"):
                deb.unlink()
            await _run(
                "bash", "-c",
                f"tar -C {root} -c . | docker import -c 'CMD [\"sleep\",\"infinity\"]' - {ref}",
            )
    return ref


async def build_web(version: str, runtime: TwinRuntime, state_dir: Path) -> str:
    """The base plus nginx, for the demo and tests (`docker build` reaches the mirror)."""
    ref = web_ref(version)
    if await runtime.image_exists(ref):
        return ref
    base = await build_base(version, runtime, state_dir)
    dockerfile = (
        f"FROM {base}\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {' '.join(WEB_PACKAGES)} && rm -rf /var/lib/apt/lists/*\n"
    )
    async with build_lock(state_dir):
        if not await runtime.image_exists(ref):
            log.info("building %s", ref)
            await _run("docker", "build", "-q", "-t", ref, "-", stdin=dockerfile.encode())
    return ref


async def ensure_demo_images(runtime: TwinRuntime, state_dir: Path) -> list[str]:
    return [await build_base("12", runtime, state_dir), await build_web("12", runtime, state_dir)]
