"""What the Kubernetes runtime cannot do for the engine-side steps, it refuses with a code
(the cluster pulls images itself; builds, imports and helpers need a Docker engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from patchtwin.exceptions import ImageUnavailable, RuntimeUnavailable
from patchtwin.settings import Settings
from patchtwin.twins.kubernetes import KubernetesRuntime
from patchtwin.twins.runtime import Helper, TwinRuntime
from schemas.codes import Code


async def no_chunks() -> AsyncIterator[bytes]:
    chunks: tuple[bytes, ...] = ()
    for chunk in chunks:
        yield chunk


async def test_image_steps_are_refused_as_image_unavailable() -> None:
    runtime: TwinRuntime = KubernetesRuntime(Settings())
    steps: list[Callable[[], Awaitable[None]]] = [
        lambda: runtime.pull_image("debian:bookworm", "patchtwin/debian:12"),
        lambda: runtime.build_image(b"", "patchtwin/asset:x"),
        lambda: runtime.import_rootfs(no_chunks(), "patchtwin/debian:12", cmd=["sleep", "infinity"]),
    ]
    for step in steps:
        with pytest.raises(ImageUnavailable) as refused:
            await step()
        assert refused.value.code is Code.IMAGE_UNAVAILABLE and "kubernetes runtime" in refused.value.message


async def test_a_helper_is_refused_as_runtime_unavailable() -> None:
    helper = Helper(role="package-fetcher", image="patchtwin/debian:12", argv=("true",), collect="/tmp")
    with pytest.raises(RuntimeUnavailable) as refused:
        await KubernetesRuntime(Settings()).run_helper("run-1", helper, timeout_s=5, ttl_s=60, max_bytes=1)
    assert refused.value.code is Code.RUNTIME_UNAVAILABLE and "package-fetcher" in refused.value.message
