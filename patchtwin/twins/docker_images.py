"""Images on a Docker engine through its API (never the `docker` command, so the engine is
always the runtime's own, `PATCHTWIN_DOCKER_URL` included): pull, build, import a root
filesystem, and save/load to carry an image from one engine to another."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence

import aiodocker
from aiodocker.exceptions import DockerError, DockerStreamError
from aiodocker.jsonstream import json_stream_list

from patchtwin.exceptions import ImageBuildFailed, ImageUnavailable
from patchtwin.twins.docker_errors import engine_error, engine_errors
from patchtwin.twins.runtime import DEFAULT_OUTPUT_CAP, CappedBuffer


async def exists(docker: aiodocker.Docker, image: str) -> bool:
    try:
        await docker.images.inspect(image)
        return True
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise engine_error(exc, f"inspect image {image}") from exc


async def pull(docker: aiodocker.Docker, image: str, tag_as: str) -> None:
    """Pulls `image` and tags it `tag_as` (`repository:tag`)."""
    repo, _, tag = image.partition(":")
    local_repo, _, local_tag = tag_as.rpartition(":")
    with engine_errors(f"pull {image}", failure=ImageUnavailable):
        await docker.images.pull(repo, tag=tag or "latest")
        await docker.images.tag(image, repo=local_repo, tag=local_tag)


async def build(docker: aiodocker.Docker, context: bytes, tag: str, labels: Mapping[str, str] | None) -> None:
    """Builds a tar context as `tag`, intermediate containers removed even on failure; a failed
    build raises ImageBuildFailed with the build's output (head and tail) in `details`."""
    output = CappedBuffer(DEFAULT_OUTPUT_CAP)
    try:
        async for item in docker.images.build(
            fileobj=io.BytesIO(gzip.compress(context)), encoding="gzip", tag=tag, labels=labels,
            rm=True, forcerm=True, stream=True,
        ):
            output.add(str(item.get("stream", "")).encode())
    except DockerStreamError as exc:
        text = output.data().decode(errors="replace") + exc.message
        raise ImageBuildFailed(f"docker: build {tag}: {exc.message}", details={"output": text}) from exc
    except DockerError as exc:
        raise engine_error(exc, f"build {tag}", failure=ImageBuildFailed) from exc


async def import_rootfs(docker: aiodocker.Docker, rootfs: AsyncIterable[bytes], tag: str, cmd: Sequence[str]) -> None:
    """`docker import`: the engine's `images/create?fromSrc=-` with the tar streamed in."""
    repo, _, version = tag.rpartition(":")
    params = {"fromSrc": "-", "repo": repo, "tag": version, "changes": f"CMD {json.dumps(list(cmd))}"}
    with engine_errors(f"import {tag}", failure=ImageUnavailable):
        async with docker._query("images/create", "POST", params=params, data=rootfs,
                                 headers={"Content-Type": "application/x-tar"}, timeout=None) as response:
            await json_stream_list(response)


async def save(docker: aiodocker.Docker, image: str) -> AsyncIterator[bytes]:
    """`docker save` of one image, as a stream of tar chunks."""
    with engine_errors(f"save {image}", failure=ImageUnavailable):
        async with docker.images.export_image(image) as stream:
            while chunk := await stream.read(1024 * 1024):
                yield chunk


async def load(docker: aiodocker.Docker, images: AsyncIterable[bytes]) -> None:
    """`docker load` of a `save` stream."""
    with engine_errors("load images", failure=ImageUnavailable):
        await docker.images.import_image(images)
