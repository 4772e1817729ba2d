"""`PATCHTWIN_DOCKER_URL` is honoured by every Docker call: with a second engine on its own
socket, a base image loaded, an asset image built and a twin run all happen there, and the
default engine sees none of it.

The second dockerd has its own socket, data root, exec root, pidfile and containerd, and a
bridge of its own without iptables rules (`--bridge NAME --iptables=false`), so it never
touches the default engine's docker0 or NAT rules. (Not `--bridge none`: that makes dockerd
delete the host's docker0, the default engine's bridge.) Twins need no network, and an asset
of files builds without the mirror.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiodocker.exceptions import DockerError

from patchtwin.settings import Settings
from patchtwin.twins import Runtimes, TwinLimits
from patchtwin.twins.asset_images import ensure_asset_image
from patchtwin.twins.docker import DockerRuntime
from patchtwin.twins.images import build_base
from schemas.asset import Asset

DOCKER0 = Path("/sys/class/net/docker0")

pytestmark = pytest.mark.skipif(shutil.which("dockerd") is None or os.geteuid() != 0,
                                reason="needs dockerd and root to start a second engine")


@pytest.fixture
def second_engine() -> Iterator[str]:
    """A second dockerd for this test only; its URL. Stopped, and its state removed, after."""
    root = Path(tempfile.mkdtemp(prefix="ptd2-", dir="/tmp"))  # short: a unix socket path is <108 bytes
    url = f"unix://{root}/docker.sock"
    bridge = f"ptd2br{uuid.uuid4().hex[:6]}"
    had_docker0 = DOCKER0.exists()
    for command in (["link", "add", bridge, "type", "bridge"],
                    ["addr", "add", f"10.254.{secrets.randbelow(250) + 1}.1/24", "dev", bridge],
                    ["link", "set", bridge, "up"]):
        subprocess.run(["ip", *command], check=True, capture_output=True)
    argv = ["dockerd", "--host", url, "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
            "--pidfile", f"{root}/docker.pid", "--bridge", bridge, "--iptables=false", "--ip-masq=false",
            "--ip-forward=false"]
    with open(root / "dockerd.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (root / "docker.sock").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, (root / "dockerd.log").read_text()[-2000:]
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        subprocess.run(["umount", "-R", f"{root}/data"], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
    assert DOCKER0.exists() or not had_docker0, "the second engine removed the default engine's docker0"


@pytest.fixture
async def engines(second_engine: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[DockerRuntime,
                                                                                           DockerRuntime]]:
    """The default engine's runtime and the one `PATCHTWIN_DOCKER_URL` makes (via Settings)."""
    default = DockerRuntime()
    monkeypatch.setenv("PATCHTWIN_DOCKER_URL", second_engine)
    second = Runtimes.from_settings(Settings(runtimes=["docker"], instance=f"ptd2-{uuid.uuid4().hex[:8]}")).get()
    assert isinstance(second, DockerRuntime)
    await wait_answers(second)
    try:
        yield default, second
    finally:
        await second.close()
        await default.close()


async def wait_answers(runtime: DockerRuntime, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await runtime.ping():
        assert time.monotonic() < deadline, "the second dockerd did not answer"
        await asyncio.sleep(0.2)


async def container_exists(runtime: DockerRuntime, name: str) -> bool:
    try:
        await runtime.docker.containers.get(name)
        return True
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise


async def test_a_build_and_a_run_happen_on_the_engine_the_url_names(
    engines: tuple[DockerRuntime, DockerRuntime], tmp_path: Path,
) -> None:
    default, second = engines
    base = await build_base("12", default, Settings().state_dir)  # there already, as a rule
    assert not await second.image_exists(base)
    await second.load_image(default.save_image(base))
    content = f"engine=second {uuid.uuid4()}\n"  # an image of its own, on no engine yet
    asset = Asset.model_validate({
        "id": "second-engine", "platform": {"os": "debian", "version": "12"},
        "files": [{"path": "/etc/second-engine.conf", "content": content}],
    })
    image = await ensure_asset_image(asset, base, second, tmp_path)
    twin = await second.create(f"second-{uuid.uuid4().hex[:8]}", image.ref, limits=TwinLimits(), ttl_s=300)
    try:
        result = await second.exec(twin, ["cat", "/etc/second-engine.conf"], timeout_s=20)
        assert (result.exit_code, result.stdout.decode()) == (0, content)
        assert image.built and await second.image_exists(image.ref)
        assert not await default.image_exists(image.ref)
        assert await container_exists(second, twin.name)
        assert not await container_exists(default, twin.name)
    finally:
        await second.destroy(twin.name)


async def test_a_root_filesystem_is_imported_on_the_engine_the_url_names(
    engines: tuple[DockerRuntime, DockerRuntime],
) -> None:
    """What `build_base` does with debootstrap's folder, fed here a base container's filesystem."""
    default, second = engines
    tag = f"ptd2/rootfs:{uuid.uuid4().hex[:8]}"
    source = await default.docker.containers.create(config={"Image": await build_base("12", default,
                                                                                       Settings().state_dir)})
    try:
        async with default.docker._query(f"containers/{source.id}/export") as response:
            await second.import_rootfs(response.content.iter_chunked(1024 * 1024), tag, cmd=["sleep", "infinity"])
    finally:
        await source.delete(force=True)
    twin = await second.create(f"rootfs-{uuid.uuid4().hex[:8]}", tag, limits=TwinLimits(), ttl_s=300)
    try:
        result = await second.exec(twin, ["cat", "/etc/debian_version"], timeout_s=20)
        assert result.exit_code == 0 and result.stdout.startswith(b"12.")
        assert (await second.docker.images.inspect(tag))["Config"]["Cmd"] == ["sleep", "infinity"]
        assert not await default.image_exists(tag)
    finally:
        await second.destroy(twin.name)
