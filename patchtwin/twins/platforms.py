"""The platforms patchtwin knows: each one's public image, local image name, package manager
and, for the Debian family, how to debootstrap it; and the lookup that tolerates aliases.
(Getting a platform's image, by pull or build, is `images.resolve_base`.)"""

from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass

from schemas.asset import Platform


@dataclass(frozen=True)
class PlatformSpec:
    os: str
    version: str
    public_image: str
    package_manager: str
    #: debootstrap suite, mirror and keyring, for the Debian family; None where it cannot be built here.
    suite: str | None = None
    mirror: str | None = None
    keyring: str | None = None

    @property
    def local_ref(self) -> str:
        return f"patchtwin/{self.os}:{self.version}"

    @property
    def label(self) -> str:
        return f"{self.os} {self.version}"


DEBIAN_MIRROR = "http://deb.debian.org/debian"
UBUNTU_MIRROR = "http://archive.ubuntu.com/ubuntu"
UBUNTU_KEYRING = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"

PLATFORMS: dict[tuple[str, str], PlatformSpec] = {
    (spec.os, spec.version): spec
    for spec in (
        PlatformSpec("debian", "11", "debian:bullseye", "apt", "bullseye", DEBIAN_MIRROR),
        PlatformSpec("debian", "12", "debian:bookworm", "apt", "bookworm", DEBIAN_MIRROR),
        PlatformSpec("debian", "13", "debian:trixie", "apt", "trixie", DEBIAN_MIRROR),
        PlatformSpec("ubuntu", "20.04", "ubuntu:20.04", "apt", "focal", UBUNTU_MIRROR, UBUNTU_KEYRING),
        PlatformSpec("ubuntu", "22.04", "ubuntu:22.04", "apt", "jammy", UBUNTU_MIRROR, UBUNTU_KEYRING),
        PlatformSpec("ubuntu", "24.04", "ubuntu:24.04", "apt", "noble", UBUNTU_MIRROR, UBUNTU_KEYRING),
        PlatformSpec("rocky", "8", "rockylinux:8", "dnf"),
        PlatformSpec("rocky", "9", "rockylinux:9", "dnf"),
        PlatformSpec("amazonlinux", "2", "amazonlinux:2", "yum"),
    )
}

#: Other spellings people use for the same platform.
OS_ALIASES = {
    "rhel": "rocky", "redhat": "rocky", "centos": "rocky", "rockylinux": "rocky", "almalinux": "rocky",
    "amazon": "amazonlinux", "amzn": "amazonlinux", "amazon-linux": "amazonlinux", "al2": "amazonlinux",
}
#: Docker's names for the architectures people write.
ARCH_ALIASES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def lookup(platform: Platform) -> PlatformSpec | None:
    """The known platform, tolerating aliases (`rhel 9.3` is Rocky 9, `amzn 2` Amazon Linux 2)."""
    os_name = OS_ALIASES.get(platform.os, platform.os)
    version = platform.version
    if os_name in ("rocky", "amazonlinux"):
        version = version.split(".")[0]
    if os_name == "debian":
        version = version.split(".")[0]
    return PLATFORMS.get((os_name, version))


def host_arch() -> str:
    return ARCH_ALIASES.get(host_platform.machine(), host_platform.machine())


def known_platforms() -> str:
    return ", ".join(spec.label for spec in PLATFORMS.values())


def how_to_provide(spec: PlatformSpec) -> str:
    """What a person can do to make a platform's image available on this engine."""
    how = (
        f"on a machine with registry access run `docker pull {spec.public_image}` and "
        f"`docker tag {spec.public_image} {spec.local_ref}` (or `docker save`/`docker load` it here)"
    )
    if spec.suite and spec.keyring:
        how += f", or install the keyring {spec.keyring} (`apt-get install ubuntu-keyring`) so it can be built"
    return how + ", or name an existing image in asset.image"
