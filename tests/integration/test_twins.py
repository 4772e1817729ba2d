"""Faithful twins on the real Docker engine: platforms, asset images built once, readiness,
system-state snapshots and their diff, fidelity."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patchtwin.cli.app import App
from patchtwin.exceptions import ImageUnavailable, TwinNotReady
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime, TwinLimits
from patchtwin.twins.asset_images import BUILDS
from patchtwin.twins.images import resolve_base
from patchtwin.twins.packages import Dpkg
from schemas import TwinReady, TwinRequested
from schemas.asset import Platform
from services.provisioner.logic import provision
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic, verdicts_of


async def test_debian_12_resolves_to_the_local_base(runtime: DockerRuntime, settings: Settings,
                                                     images: list[str]) -> None:
    ref = await resolve_base(Platform(os="debian", version="12.7"), runtime, settings.state_dir)
    assert ref == "patchtwin/debian:12"


async def test_platform_no_registry_has_is_unavailable_with_a_way_out(runtime: DockerRuntime,
                                                                       settings: Settings) -> None:
    with pytest.raises(ImageUnavailable) as raised:
        await resolve_base(Platform(os="rocky", version="9"), runtime, settings.state_dir, pull_timeout_s=10)
    assert "docker pull rockylinux:9" in raised.value.message


async def test_dpkg_adapter_reads_a_real_twin(runtime: DockerRuntime, images: list[str]) -> None:
    run_id = new_run_id("dpkg")
    twin = await runtime.create(run_id, "patchtwin/debian:12", limits=TwinLimits(), ttl_s=300)
    try:
        result = await runtime.exec(twin, ["sh", "-c", Dpkg().list_command()], timeout_s=20)
        packages = Dpkg().parse_list(result.stdout.decode())
        one = await runtime.exec(twin, ["sh", "-c", Dpkg().version_command("procps")], timeout_s=20)
    finally:
        await runtime.destroy(twin.name)
    assert {"dpkg", "base-files", "procps", "iproute2"} <= set(packages)
    assert Dpkg().parse_version(one.stdout.decode(), "procps") == packages["procps"]


async def test_unknown_platform_ends_in_image_unavailable(pipeline: App, settings: Settings) -> None:
    run_id = new_run_id("noplatform")
    request = nginx_request(run_id, "true", checks=[])
    del request["asset"]["image"]
    request["asset"]["platform"] = {"os": "solaris", "version": "11"}
    await publish(settings, "twin.requested", request)

    [verdict] = await verdicts_of(settings, run_id)

    assert verdict["status"] == "error"
    assert [i["code"] for i in verdict["issues"]] == ["IMAGE_UNAVAILABLE"]
    assert "unknown platform solaris 11" in verdict["issues"][0]["message"]


# -- asset images, readiness, snapshots and fidelity -------------------------------------------

#: Versions on deb.debian.org today (stable releases change them only at point releases; a
#: PACKAGE_VERSION_UNAVAILABLE naming the package says one moved).
MIRROR_VERSIONS = {"12": {"hello": "2.10-3", "tree": "2.1.0-1"}, "11": {"hello": "2.10-2"}}
LISTEN_TCP6_ONLY = (
    "perl -MSocket=:all -e 'socket(my $s, AF_INET6, SOCK_STREAM, 0) or die; "
    "setsockopt($s, IPPROTO_IPV6, IPV6_V6ONLY, 1) or die; setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1); "
    "bind($s, pack_sockaddr_in6({port}, IN6ADDR_ANY)) or die \"bind: $!\"; listen($s, 5) or die; sleep 600'"
)


@pytest.fixture(scope="module")
def pinned_asset() -> dict[str, Any]:
    """A Debian 12 asset no earlier session built (its marker file is new), so the first run
    must build and the second must not."""
    return {
        "id": "web-pinned",
        "platform": {"os": "debian", "version": "12"},
        "packages": MIRROR_VERSIONS["12"],
        "files": [{"path": "/etc/patchtwin-test/marker", "content": f"{uuid.uuid4()}\n", "mode": "0600"}],
        "environment": {"APP_ENV": "twin-test"},
    }


@pytest.fixture(scope="module")
async def asset_images_made() -> AsyncIterator[list[str]]:
    """Removes the asset images this module built (only those)."""
    made: list[str] = []
    yield made
    runtime = DockerRuntime()
    try:
        for ref in made:
            with contextlib.suppress(Exception):
                await runtime.docker.images.delete(ref, force=True)
    finally:
        await runtime.close()


def ptdemo_deb(tmp_path: Path) -> bytes:
    """A tiny package built with dpkg-deb: what the patch installs."""
    root = tmp_path / "ptdemo"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/ptdemo").mkdir(parents=True)
    (root / "usr/share/ptdemo/README").write_text("patchtwin test package\n")
    (root / "DEBIAN/control").write_text(
        "Package: ptdemo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: patchtwin <t@example.org>\n"
        "Description: patchtwin test package\n"
    )
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(tmp_path / "ptdemo.deb")],
                   check=True, capture_output=True)
    return (tmp_path / "ptdemo.deb").read_bytes()


def installing_patch(deb: bytes, port: int) -> str:
    listen = LISTEN_TCP6_ONLY.format(port=port)
    return (
        "#!/bin/sh\nset -e\n"
        f"echo {base64.b64encode(deb).decode()} | base64 -d > /tmp/ptdemo.deb\n"
        "dpkg -i /tmp/ptdemo.deb\n"
        f"setsid {listen} </dev/null >/dev/null 2>&1 &\n"
        "echo 'patched' >> /etc/motd\n"
        f"for i in $(seq 50); do grep -q ':{port:04X} 00000000000000000000000000000000:0000 0A' /proc/net/tcp6 "
        "&& exit 0; sleep 0.1; done; echo 'listener did not come up' >&2; exit 1\n"
    )


async def _ready_event(settings: Settings, run_id: str) -> dict[str, Any]:
    [record] = await read_topic(settings, "twin.ready", match=keyed(run_id), timeout_s=180)
    return json.loads(record.value)


async def test_patch_changes_show_in_the_verdicts_state_diff_on_a_pinned_twin(
    pipeline: App, settings: Settings, pinned_asset: dict[str, Any], asset_images_made: list[str],
    tmp_path: Path,
) -> None:
    run_id = new_run_id("statediff")
    request = nginx_request(run_id, installing_patch(ptdemo_deb(tmp_path), 8443),
                            checks=[{"type": "package", "name": "hello"}])
    request["asset"] = pinned_asset
    await publish(settings, "twin.requested", request)

    [verdict] = await verdicts_of(settings, run_id, timeout_s=300)
    ready = await _ready_event(settings, run_id)
    asset_images_made.append(ready["context"]["provisioning"]["image"])

    assert verdict["status"] == "passed", verdict["summary"]
    provisioning = ready["context"]["provisioning"]
    assert provisioning["image"].startswith("patchtwin/asset:") and provisioning["base_image"] == "patchtwin/debian:12"
    assert provisioning["image_built"] is True
    assert ready["context"]["fidelity"]["score"] == 100 and ready["context"]["fidelity"]["declared"] == 3
    assert ready["context"]["state"]["packages"]["hello"] == "2.10-3"
    diff = verdict["patch"]["state_diff"]
    assert {"name": "ptdemo", "version": "1.0-1"} in diff["packages_added"]
    opened = [(s["proto"], s["address"], s["port"]) for s in diff["ports_opened"]]
    assert opened == [("tcp6", "::", 8443)]          # IPv6 only: no tcp (IPv4) socket on 8443
    assert "/etc/motd" in diff["files_changed"]


async def test_same_asset_again_builds_nothing(
    pipeline: App, settings: Settings, pinned_asset: dict[str, Any], asset_images_made: list[str],
) -> None:
    runs = [new_run_id("reuse-a"), new_run_id("reuse-b")]
    for run_id in runs:
        request = nginx_request(run_id, "true", checks=[])
        request["asset"] = pinned_asset
        await publish(settings, "twin.requested", request)
        await verdicts_of(settings, run_id, timeout_s=300, settle_s=0)

    first, second = [(await _ready_event(settings, r))["context"]["provisioning"] for r in runs]
    asset_images_made.append(first["image"])

    assert first["image"] == second["image"]
    assert second["image_built"] is False
    assert BUILDS[second["image"]] == 1                  # built once in this process, whichever run did


async def test_pinned_version_that_does_not_exist_is_one_error_verdict_naming_the_package(
    pipeline: App, settings: Settings,
) -> None:
    run_id = new_run_id("nopin")
    request = nginx_request(run_id, "true", checks=[])
    request["asset"] = {"id": "web-bad-pin", "platform": {"os": "debian", "version": "12"},
                        "packages": {"hello": "0.0-does-not-exist"}}
    await publish(settings, "twin.requested", request)

    verdicts = await verdicts_of(settings, run_id, timeout_s=300)

    assert len(verdicts) == 1 and verdicts[0]["status"] == "error"
    [issue] = verdicts[0]["issues"]
    assert issue["code"] == "PACKAGE_VERSION_UNAVAILABLE"
    assert "hello" in issue["message"] and "0.0-does-not-exist" in issue["message"]


async def test_fidelity_names_the_pin_the_twin_does_not_meet(runtime: DockerRuntime, settings: Settings,
                                                             images: list[str]) -> None:
    request = _request("fidelity", {
        "id": "web-01", "platform": {"os": "debian", "version": "12"}, "image": "patchtwin/debian-nginx:12",
        "services": ["nginx"], "packages": {"nginx": "0.1-production", "procps": "2:4.0.2-3"},
        "ports": [{"port": 80}],
    })
    ready = await _provisioned(request, runtime, settings)

    fidelity = ready.context.fidelity
    assert fidelity is not None
    assert (fidelity.declared, fidelity.matched, fidelity.score) == (4, 3, 75.0)
    [mismatch] = fidelity.mismatches
    assert (mismatch.kind, mismatch.name, mismatch.expected) == ("package", "nginx", "0.1-production")
    assert mismatch.actual == ready.context.state.packages["nginx"]  # type: ignore[union-attr]


async def test_supervised_command_service_is_ready_when_its_port_listens(
    runtime: DockerRuntime, settings: Settings, images: list[str]
) -> None:
    request = _request("command-svc", {
        "id": "worker-01", "platform": {"os": "debian", "version": "12"}, "image": "patchtwin/debian:12",
        "services": [{"name": "worker", "command": LISTEN_TCP6_ONLY.format(port=8081)}],
        "ports": [{"port": 8081}],
    })
    ready = await _provisioned(request, runtime, settings)

    provisioning, state = ready.context.provisioning, ready.context.state
    assert provisioning is not None and state is not None
    assert provisioning.managers == {"worker": "command"}
    assert 0 < provisioning.time_to_ready_s < settings.readiness_timeout_s
    assert state.services["worker"].state == "running"
    assert ready.context.fidelity is not None and ready.context.fidelity.score == 100


async def test_twin_that_never_gets_ready_says_what_was_missing(runtime: DockerRuntime, settings: Settings,
                                                                images: list[str]) -> None:
    request = _request("never-ready", {
        "id": "web-01", "platform": {"os": "debian", "version": "12"}, "image": "patchtwin/debian-nginx:12",
        "services": ["nginx"], "ports": [{"port": 9999}],
    })
    quick = settings.model_copy(update={"readiness_timeout_s": 2})

    with pytest.raises(TwinNotReady) as raised:
        await _provisioned(request, runtime, quick)

    assert "nothing listens on tcp port 9999" in raised.value.message
    assert "nginx" not in raised.value.details["missing"]      # nginx did come up
    # the services as readiness's last poll saw them
    assert raised.value.details["services"]["nginx"]["state"] == "running"


async def test_debian_11_twin_meets_its_pins(runtime: DockerRuntime, settings: Settings) -> None:
    """Debian 11 built here with debootstrap (about 50 s the first time), then the asset on it;
    the asset image is kept, so later sessions reuse it."""
    request = _request("bullseye", {
        "id": "legacy-01", "platform": {"os": "debian", "version": "11"},
        "packages": MIRROR_VERSIONS["11"], "files": [{"path": "/etc/legacy.conf", "content": "x=1\n"}],
    })
    ready = await _provisioned(request, runtime, settings)

    provisioning, fidelity, state = ready.context.provisioning, ready.context.fidelity, ready.context.state
    assert provisioning is not None and fidelity is not None and state is not None
    assert provisioning.base_image == "patchtwin/debian:11"
    assert state.packages["base-files"].startswith("11")
    assert (fidelity.score, fidelity.mismatches) == (100, [])


def _request(prefix: str, asset: dict[str, Any]) -> TwinRequested:
    return TwinRequested.model_validate({"run_id": new_run_id(prefix), "asset": asset,
                                         "patch": {"id": "P-none", "script": "true"}})


async def _provisioned(request: TwinRequested, runtime: DockerRuntime, settings: Settings) -> TwinReady:
    """Runs the real provisioner logic and removes the twin afterwards, whatever happened."""
    try:
        return await provision(request, runtime, settings)
    finally:
        await runtime.destroy_run(request.run_id)
