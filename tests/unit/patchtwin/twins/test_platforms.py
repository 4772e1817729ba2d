"""Platform lookup: the seed table, aliases, and how to make a missing image available."""

from __future__ import annotations

import pytest

from patchtwin.twins.platforms import how_to_provide, lookup
from schemas.asset import Platform


@pytest.mark.parametrize(
    ("os", "version", "image", "manager"),
    [
        ("debian", "11", "patchtwin/debian:11", "apt"),
        ("debian", "12.7", "patchtwin/debian:12", "apt"),
        ("debian", "13", "patchtwin/debian:13", "apt"),
        ("ubuntu", "20.04", "patchtwin/ubuntu:20.04", "apt"),
        ("ubuntu", "22.04", "patchtwin/ubuntu:22.04", "apt"),
        ("ubuntu", "24.04", "patchtwin/ubuntu:24.04", "apt"),
        ("rhel", "9.3", "patchtwin/rocky:9", "dnf"),
        ("rocky", "8", "patchtwin/rocky:8", "dnf"),
        ("amzn", "2", "patchtwin/amazonlinux:2", "yum"),
    ],
)
def test_seed_platforms_resolve(os: str, version: str, image: str, manager: str) -> None:
    spec = lookup(Platform(os=os, version=version))
    assert spec is not None
    assert (spec.local_ref, spec.package_manager) == (image, manager)


def test_unknown_platform_resolves_to_nothing() -> None:
    assert lookup(Platform(os="solaris", version="11")) is None
    assert lookup(Platform(os="ubuntu", version="18.04")) is None


def test_unavailable_image_message_says_how_to_make_it_available() -> None:
    spec = lookup(Platform(os="rocky", version="9"))
    assert spec is not None
    how = how_to_provide(spec)
    assert "docker pull rockylinux:9" in how and "docker tag rockylinux:9 patchtwin/rocky:9" in how
