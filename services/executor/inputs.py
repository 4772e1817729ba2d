"""What a patch brings into the twin, fetched outside it: artifacts (inline or from a URL)
and Debian packages (downloaded by a short-lived helper container, with network, from the
twin's own image). The twin itself never gets a network.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass
from typing import Any

import aiohttp

from patchtwin.exceptions import PatchInputUnavailable, RerunInputChanged, TwinError
from patchtwin.settings import Settings
from patchtwin.twins.runtime import Helper, TwinRuntime
from schemas.request import Artifact


@dataclass(frozen=True)
class Fetched:
    """A file ready to be copied into the twin, with what identifies its content."""

    path: str
    content: bytes
    mode: int
    source: str  # "inline", the URL, or the package spec it was downloaded for

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def record(self) -> dict[str, object]:
        return {"path": self.path, "sha256": self.sha256, "bytes": len(self.content), "mode": oct(self.mode),
                "source": self.source}


async def fetch_artifacts(
    artifacts: list[Artifact], settings: Settings, *, rerun_of: str | None = None
) -> list[Fetched]:
    """Every artifact's content, checked against its sha256 when one is given. In a rerun the
    sha256 is the one the original run recorded, so a mismatch means the source changed since."""
    fetched: list[Fetched] = []
    total = 0
    for artifact in artifacts:
        if artifact.content_base64 is not None:
            content, source = base64.b64decode(artifact.content_base64), "inline"
        else:
            assert artifact.url is not None
            content, source = await _download(artifact.url, settings), artifact.url
        total += len(content)
        if total > settings.artifact_max_bytes:
            raise PatchInputUnavailable(f"artifacts are over {settings.artifact_max_bytes} bytes in all")
        item = Fetched(artifact.path, content, artifact.mode, source)
        if artifact.sha256 is not None and artifact.sha256 != item.sha256 and rerun_of is not None:
            raise RerunInputChanged(
                f"artifact {artifact.path} ({source}): sha256 is now {item.sha256}, run {rerun_of} recorded "
                f"{artifact.sha256}; its content changed since, so run {rerun_of} cannot be repeated exactly")
        if artifact.sha256 is not None and artifact.sha256 != item.sha256:
            raise PatchInputUnavailable(
                f"artifact {artifact.path}: sha256 is {item.sha256}, the request says {artifact.sha256}")
        fetched.append(item)
    return fetched


def input_differences(recorded: dict[str, Any], fetched: dict[str, Any]) -> list[str]:
    """How the inputs of a rerun (`fetched`) differ from those the original run `recorded`,
    both in the `patch_runs.inputs` form: each artifact and .deb by path, compared by sha256.
    Empty when the rerun puts exactly the same bytes into the twin."""
    differences = []
    for kind in ("artifacts", "packages"):
        before = {item["path"]: item["sha256"] for item in recorded.get(kind, [])}
        after = {item["path"]: item["sha256"] for item in fetched.get(kind, [])}
        for path in sorted(before.keys() | after.keys()):
            if path not in after:
                differences.append(f"{path}: recorded with sha256 {before[path]}, not fetched now")
            elif path not in before:
                differences.append(f"{path}: fetched now (sha256 {after[path]}), not in the record")
            elif before[path] != after[path]:
                differences.append(f"{path}: sha256 is now {after[path]}, recorded {before[path]}")
    return differences


def verify_rerun(recorded: dict[str, Any], fetched: dict[str, Any], rerun_of: str) -> None:
    """Refuses a rerun whose inputs are not byte for byte those of run `rerun_of`."""
    differences = input_differences(recorded, fetched)
    if differences:
        raise RerunInputChanged(
            f"the patch's inputs differ from those recorded for run {rerun_of}, so it cannot be repeated "
            "exactly: " + "; ".join(differences))


async def _download(url: str, settings: Settings) -> bytes:
    limit = settings.artifact_max_bytes
    timeout = aiohttp.ClientTimeout(total=settings.artifact_fetch_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise PatchInputUnavailable(f"artifact {url}: HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:
                    raise PatchInputUnavailable(f"artifact {url}: over {limit} bytes")
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PatchInputUnavailable(f"artifact {url}: {type(exc).__name__}: {exc}") from exc


#: In the helper: the package lists (cached in a volume per image, refreshed when older than
#: 6 h or when the version is not found in them), then the requested versions and whatever of
#: their dependencies the image lacks, downloaded only (apt computes exactly that set).
_DOWNLOAD = """
export DEBIAN_FRONTEND=noninteractive
update() {{ for i in 1 2 3 4 5; do apt-get update -qq >/dev/null && return 0; sleep 2; done; return 1; }}
get() {{ apt-get install --download-only -y -qq --no-install-recommends --allow-downgrades {specs}; }}
[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 | head -n 1)" ] || update || exit 1
get 2>/dev/null || {{ update && get; }}
"""
ARCHIVES = "/var/cache/apt/archives"


def lists_volume(image: str) -> str:
    """The Docker volume caching `image`'s apt package lists between fetches."""
    return f"patchtwin-apt-lists-{hashlib.sha256(image.encode()).hexdigest()[:12]}"


async def fetch_packages(
    packages: dict[str, str], image: str, run_id: str, runtime: TwinRuntime, settings: Settings
) -> list[Fetched]:
    """The .deb files that install `packages` (name → version) on `image`, downloaded by a
    helper container of the twin's runtime, from the same image, with a network; then removed."""
    specs = " ".join(shlex.quote(f"{name}={version}") for name, version in sorted(packages.items()))
    helper = Helper(role="package-fetcher", image=image, argv=("sh", "-c", _DOWNLOAD.format(specs=specs)),
                    collect=ARCHIVES, caches=((lists_volume(image), "/var/lib/apt/lists"),))
    timeout_s = settings.package_fetch_timeout_s
    try:
        result = await runtime.run_helper(run_id, helper, timeout_s=timeout_s, ttl_s=int(timeout_s) + 60,
                                          max_bytes=settings.package_max_bytes)
    except TimeoutError as exc:
        raise PatchInputUnavailable(f"packages {specs}: not downloaded within {timeout_s:g}s") from exc
    except TwinError as exc:
        raise PatchInputUnavailable(f"packages {specs}: helper container: {exc.message}") from exc
    if result.exit_code != 0:
        raise PatchInputUnavailable(
            f"packages {specs}: could not be downloaded for {image}: {result.logs.strip()[-800:]}")
    if result.collected.truncated:
        raise PatchInputUnavailable(f"packages {specs}: over {settings.package_max_bytes} bytes in all "
                                    "(PATCHTWIN_PACKAGE_MAX_BYTES), or not a readable archive")
    return [Fetched(f"/opt/patchtwin/debs/{path.rsplit('/', 1)[1]}", content, 0o644, specs)
            for path, content in sorted(result.collected.files.items())
            if path.endswith(".deb") and path.count("/") == 1]
