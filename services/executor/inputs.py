"""What a patch brings into the twin, fetched outside it: artifacts (inline or from a URL)
and Debian packages (downloaded by a short-lived helper container, with network, from the
twin's own image). The twin itself never gets a network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import shlex
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from patchtwin.exceptions import PatchInputUnavailable, RerunInputChanged
from patchtwin.settings import Settings
from patchtwin.twins.runtime import LABEL_CREATED, LABEL_EXPIRES, LABEL_INSTANCE, LABEL_OWNER, LABEL_RUN
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
    packages: dict[str, str], image: str, run_id: str, settings: Settings
) -> list[Fetched]:
    """The .deb files that install `packages` (name → version) on `image`, downloaded by a
    helper container from the same image on the default bridge network, then removed."""
    specs = " ".join(shlex.quote(f"{name}={version}") for name, version in sorted(packages.items()))
    created = datetime.now(UTC)
    labels = {
        LABEL_RUN: run_id, LABEL_OWNER: settings.owner, LABEL_INSTANCE: settings.instance,
        LABEL_CREATED: created.isoformat(),
        LABEL_EXPIRES: (created + timedelta(seconds=settings.package_fetch_timeout_s + 60)).isoformat(),
        "io.patchtwin.role": "package-fetcher",
    }
    config: dict[str, Any] = {
        "Image": image,
        "Cmd": ["sh", "-c", _DOWNLOAD.format(specs=specs)],
        "Labels": labels,
        "HostConfig": {
            "NetworkMode": "bridge",
            "Mounts": [{"Type": "volume", "Source": lists_volume(image), "Target": "/var/lib/apt/lists"}],
            "Memory": 1024 * 1024 * 1024,
            "PidsLimit": 256,
            "CapDrop": ["ALL"],
            "CapAdd": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"],
            "SecurityOpt": ["no-new-privileges"],
        },
    }
    docker = aiodocker.Docker(url=settings.docker_url)
    container = None
    try:
        try:
            container = await docker.containers.create(config=config)
            await container.start()
            status = await asyncio.wait_for(container.wait(), timeout=settings.package_fetch_timeout_s)
        except TimeoutError as exc:
            raise PatchInputUnavailable(
                f"packages {specs}: not downloaded within {settings.package_fetch_timeout_s:g}s") from exc
        except DockerError as exc:
            raise PatchInputUnavailable(f"packages {specs}: helper container: {exc.message}") from exc
        if status.get("StatusCode") != 0:
            logs = "".join(await container.log(stdout=True, stderr=True, tail=20))
            raise PatchInputUnavailable(f"packages {specs}: could not be downloaded for {image}: {logs.strip()[-800:]}")
        archive = await container.get_archive(ARCHIVES)
        return _debs(archive, specs)
    finally:
        if container is not None:
            with contextlib.suppress(DockerError):  # else the janitor removes it by labels and expiry
                await container.delete(force=True, v=True)
        await docker.close()


def _debs(archive: tarfile.TarFile, specs: str) -> list[Fetched]:
    fetched = []
    with archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".deb") and "/" in member.name \
                    and member.name.count("/") == 1:
                handle = archive.extractfile(member)
                if handle is not None:
                    name = member.name.rsplit("/", 1)[1]
                    fetched.append(Fetched(f"/opt/patchtwin/debs/{name}", handle.read(), 0o644, specs))
    return fetched

