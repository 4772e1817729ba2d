"""A platform's base image on the runtime's engine: found there, else pulled and tagged, else
(the Debian family) built with debootstrap and imported; and the nginx image of the demo.

Every step goes through the runtime (`TwinRuntime.pull_image`, `import_rootfs`,
`build_image`), so the images land on the engine `PATCHTWIN_DOCKER_URL` names.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from patchtwin.exceptions import ImageUnavailable, PatchtwinError
from patchtwin.twins.archives import archive
from patchtwin.twins.platforms import (
    ARCH_ALIASES,
    PLATFORMS,
    PlatformSpec,
    host_arch,
    how_to_provide,
    known_platforms,
    lookup,
)
from patchtwin.twins.runtime import TwinRuntime
from schemas.asset import Platform

log = logging.getLogger("patchtwin.images")

DEBIAN_RELEASES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
#: What every base gets beyond minbase: the tools the probe and service managers use.
BASE_PACKAGES = ("iproute2", "procps")
WEB_PACKAGES = ("nginx", "openssl")


def base_ref(version: str) -> str:
    return f"patchtwin/debian:{version}"


def web_ref(version: str) -> str:
    return f"patchtwin/debian-nginx:{version}"


async def resolve_base(
    platform: Platform, runtime: TwinRuntime, state_dir: Path, *, build: bool = True, pull_timeout_s: float = 60
) -> str:
    """The base image for a platform: local, else pulled, else built, else IMAGE_UNAVAILABLE."""
    spec = lookup(platform)
    if spec is None:
        raise ImageUnavailable(
            f"unknown platform {platform.os} {platform.version}; known: {known_platforms()}; "
            "or name an image in asset.image",
            details={"platform": platform.model_dump()},
        )
    arch = ARCH_ALIASES.get(platform.arch, platform.arch)
    if arch != host_arch():
        raise ImageUnavailable(
            f"{spec.label} for {platform.arch}: this engine runs {host_arch()} twins only",
            details={"platform": platform.model_dump()},
        )
    if await runtime.image_exists(spec.local_ref):
        return spec.local_ref
    pull_error = await _pull(runtime, spec, pull_timeout_s)
    if pull_error is None:
        return spec.local_ref
    if build and spec.suite is not None and (spec.keyring is None or Path(spec.keyring).exists()):
        return await build_base(spec, runtime, state_dir)
    raise ImageUnavailable(
        f"no image for {spec.label}: not on this engine, the registry did not answer ({pull_error}); "
        f"{how_to_provide(spec)}",
        details={"platform": platform.model_dump(), "image": spec.local_ref},
    )


async def _pull(runtime: TwinRuntime, spec: PlatformSpec, timeout_s: float) -> str | None:
    """Pulls the public image and tags it as the local one; the error text when it cannot."""
    try:
        await asyncio.wait_for(runtime.pull_image(spec.public_image, spec.local_ref), timeout=timeout_s)
    except TimeoutError:
        error = f"pull of {spec.public_image} timed out after {timeout_s:g}s"
    except PatchtwinError as exc:
        error = f"pull of {spec.public_image} failed: {exc.message[:300]}"
    else:
        log.info("pulled %s as %s", spec.public_image, spec.local_ref)
        return None
    log.info("%s", error)
    return error


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
    """debootstrap a Debian-family release into a folder and import it as an image (about 40 s).

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
            for deb in Path(root, "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()
            await runtime.import_rootfs(tar_stream(root), ref, cmd=["sleep", "infinity"])
    return ref


async def build_web(version: str, runtime: TwinRuntime, state_dir: Path) -> str:
    """The base plus nginx, for the demo and tests (the build's containers reach the mirror)."""
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
            await runtime.build_image(archive([("/Dockerfile", dockerfile.encode(), 0o644)]), ref)
    return ref


async def ensure_demo_images(runtime: TwinRuntime, state_dir: Path) -> list[str]:
    return [await build_base("12", runtime, state_dir), await build_web("12", runtime, state_dir)]


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise ImageUnavailable(
            f"{argv[0]} failed ({process.returncode}): {output.decode(errors='replace')[-1500:]}"
        )


async def tar_stream(root: str) -> AsyncGenerator[bytes, None]:
    """A folder as a tar stream (GNU tar: owners, modes, device nodes and links as they are).

    Its warnings are read beside the stream (a full pipe would stall tar), and tar is killed
    and reaped when the reader stops early (an import that failed half way)."""
    process = await asyncio.create_subprocess_exec(
        "tar", "-C", root, "-c", ".", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    warnings = asyncio.ensure_future(process.stderr.read())
    try:
        while chunk := await process.stdout.read(1024 * 1024):
            yield chunk
        if await process.wait() != 0:
            errors = await warnings
            raise ImageUnavailable(f"tar of {root} failed: {errors.decode(errors='replace')[-800:]}")
    finally:
        if process.returncode is None:
            log.warning("tar of %s stopped before its end: its reader gave up", root)
            process.kill()
            await process.wait()
        warnings.cancel()
