"""Asset images: the platform's base plus the asset's pinned packages, files and environment,
built once and cached under a fingerprint of exactly those (`patchtwin/asset:<sha256>`).

The build runs on the runtime's engine (`TwinRuntime.build_image`) from the local base; its
containers reach the distribution's mirror on the default bridge. A second request for the
same asset finds the image and builds nothing (`BUILDS` counts real builds in this process, for tests and the bench).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import tarfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from patchtwin.exceptions import ImageBuildFailed, PackageVersionUnavailable
from patchtwin.twins.images import build_lock
from patchtwin.twins.packages import package_manager
from patchtwin.twins.platforms import lookup
from patchtwin.twins.runtime import TwinRuntime
from schemas.asset import Asset

log = logging.getLogger("patchtwin.asset_images")

REPOSITORY = "patchtwin/asset"
LABEL_ASSET = "io.patchtwin.asset-fingerprint"
#: Bump when the way images are built changes, so old cached images are not reused.
RECIPE_VERSION = "1"
#: Real builds done by this process, by tag.
BUILDS: Counter[str] = Counter()


@dataclass(frozen=True)
class AssetImage:
    ref: str
    built: bool
    build_s: float


def fingerprint(asset: Asset, base: str) -> str:
    """sha256 of what goes into the image: base, platform, pins, files, environment."""
    recipe = {
        "recipe": RECIPE_VERSION,
        "base": base,
        "platform": asset.platform.model_dump(),
        "packages": dict(sorted(asset.packages.items())),
        "files": [f.model_dump() for f in sorted(asset.files, key=lambda f: f.path)],
        "environment": dict(sorted(asset.environment.items())),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def dockerfile(asset: Asset, base: str) -> str:
    spec = lookup(asset.platform)
    manager = package_manager(spec.package_manager if spec else "apt")
    lines = [f"FROM {base}"]
    for name, value in sorted(asset.environment.items()):
        lines.append(f"ENV {name}={json.dumps(value)}")
    if asset.packages:
        lines.append(f"RUN {manager.install_command(asset.packages)}")
    for index, spec_file in enumerate(sorted(asset.files, key=lambda f: f.path)):
        lines.append(f"COPY {json.dumps([f'files/{index}', spec_file.path])}")
        lines.append(f"RUN chmod {spec_file.mode:o} {json.dumps(spec_file.path)}")
    return "\n".join(lines) + "\n"


def build_context(asset: Asset, base: str) -> bytes:
    """The build context as a tar: the Dockerfile and each declared file's content."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        members = [("Dockerfile", dockerfile(asset, base).encode())]
        members += [(f"files/{i}", f.content.encode()) for i, f in
                    enumerate(sorted(asset.files, key=lambda f: f.path))]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def ensure_asset_image(asset: Asset, base: str, runtime: TwinRuntime, state_dir: Path,
                             timeout_s: float = 900) -> AssetImage:
    """The asset's image, built now only when no image with its fingerprint exists."""
    ref = f"{REPOSITORY}:{fingerprint(asset, base)}"
    if await runtime.image_exists(ref):
        return AssetImage(ref, built=False, build_s=0.0)
    started = time.monotonic()
    async with build_lock(state_dir, name=f"asset-{ref.rsplit(':', 1)[1][:16]}.lock"):
        if await runtime.image_exists(ref):
            return AssetImage(ref, built=False, build_s=0.0)
        log.info("building %s for asset %s", ref, asset.id)
        await _build(runtime, asset, base, ref, timeout_s)
        BUILDS[ref] += 1
    return AssetImage(ref, built=True, build_s=round(time.monotonic() - started, 3))


async def _build(runtime: TwinRuntime, asset: Asset, base: str, ref: str, timeout_s: float) -> None:
    """Builds the asset's image; a failure that names a missing pin is PACKAGE_VERSION_UNAVAILABLE."""
    try:
        await asyncio.wait_for(
            runtime.build_image(build_context(asset, base), ref, labels={LABEL_ASSET: ref.rsplit(":", 1)[1]}),
            timeout_s,
        )
    except TimeoutError:
        raise ImageBuildFailed(f"building the image of asset {asset.id} took over {timeout_s:g}s") from None
    except ImageBuildFailed as exc:
        output = str(exc.details.get("output") or exc.message)
        spec = lookup(asset.platform)
        missing = package_manager(spec.package_manager if spec else "apt").missing_pin(output, asset.packages)
        if missing is not None:
            wanted = asset.packages.get(missing)
            raise PackageVersionUnavailable(
                f"package {missing} {wanted or ''}: that version is not in the repositories of "
                f"{asset.platform.os} {asset.platform.version}".replace("  ", " "),
                details={"package": missing, "version": wanted, "output": output[-1500:]},
            ) from exc
        raise ImageBuildFailed(
            f"building the image of asset {asset.id} failed: {output[-1500:]}",
            details={"output": output[-4000:]},
        ) from exc
