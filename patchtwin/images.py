"""Platform → image, and the local base images built with debootstrap (no registry needed)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import tempfile
from pathlib import Path

from patchtwin.exceptions import ImageUnavailable
from patchtwin.runtime import DockerRuntime, TwinRuntime
from schemas.request import Asset

log = logging.getLogger("patchtwin.images")

DEBIAN_RELEASES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
MIRROR = "http://deb.debian.org/debian"
#: What every base gets beyond minbase: the tools the probe and service managers use.
BASE_PACKAGES = ("iproute2", "procps")
WEB_PACKAGES = ("nginx", "openssl")


def base_ref(version: str) -> str:
    return f"patchtwin/debian:{version}"


def web_ref(version: str) -> str:
    return f"patchtwin/debian-nginx:{version}"


async def resolve_image(asset: Asset, runtime: TwinRuntime) -> str | None:
    """The image to start the asset's twin from, or None when there is none to be had."""
    if asset.image:
        return asset.image if await runtime.image_exists(asset.image) else None
    if asset.platform.os == "debian" and asset.platform.version in DEBIAN_RELEASES:
        ref = base_ref(asset.platform.version)
        return ref if await runtime.image_exists(ref) else None
    return None


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


@contextlib.contextmanager
def _build_lock(state_dir: Path):  # type: ignore[no-untyped-def]
    """One build at a time on this machine, whichever process asks."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "images.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def build_base(version: str, runtime: DockerRuntime, state_dir: Path) -> str:
    """debootstrap the Debian release into a folder and `docker import` it (about 40 s)."""
    if version not in DEBIAN_RELEASES:
        raise ImageUnavailable(f"no local build for debian {version}; known: {sorted(DEBIAN_RELEASES)}")
    ref = base_ref(version)
    if await runtime.image_exists(ref):
        return ref
    if shutil.which("debootstrap") is None:
        raise ImageUnavailable("debootstrap is not installed: `apt-get install debootstrap`")
    with _build_lock(state_dir):
        if await runtime.image_exists(ref):
            return ref
        with tempfile.TemporaryDirectory(prefix="patchtwin-rootfs-", dir=state_dir) as root:
            log.info("building %s with debootstrap", ref)
            await _run(
                "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_RELEASES[version], root, MIRROR,
            )
            archives = Path(root, "var/cache/apt/archives")
            for deb in archives.glob("*.deb"):
                deb.unlink()
            await _run(
                "bash", "-c",
                f"tar -C {root} -c . | docker import -c 'CMD [\"sleep\",\"infinity\"]' - {ref}",
            )
    return ref


async def build_web(version: str, runtime: DockerRuntime, state_dir: Path) -> str:
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
    with _build_lock(state_dir):
        if not await runtime.image_exists(ref):
            log.info("building %s", ref)
            await _run("docker", "build", "-q", "-t", ref, "-", stdin=dockerfile.encode())
    return ref


async def ensure_demo_images(runtime: DockerRuntime, state_dir: Path) -> list[str]:
    return [await build_base("12", runtime, state_dir), await build_web("12", runtime, state_dir)]
