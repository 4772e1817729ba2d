"""Faithful twins on the real Docker engine: platform resolution and the dpkg adapter."""

from __future__ import annotations

import pytest

from patchtwin.app import App
from patchtwin.exceptions import ImageUnavailable
from patchtwin.platforms import Dpkg, resolve_base
from patchtwin.runtime import DockerRuntime, TwinLimits
from patchtwin.settings import Settings
from schemas.asset import Platform
from tests.clients import new_run_id, nginx_request, publish, verdicts_of


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
