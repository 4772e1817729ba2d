"""Platforms: which image a platform resolves to, how its packages are read and pinned, and what
its service managers' answers mean.

Resolution of a platform's base image, in order: the local image `patchtwin/<os>:<version>`;
the public image pulled from a registry (then tagged locally); for the Debian family, a local
debootstrap build; else `IMAGE_UNAVAILABLE`, with a message saying how to make it available.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import platform as host_platform
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from patchtwin.exceptions import ImageUnavailable
from patchtwin.twins import DockerRuntime, TwinRuntime
from schemas.asset import Platform
from schemas.state import ServiceState

log = logging.getLogger("patchtwin.twins.platforms")


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


async def resolve_base(
    platform: Platform, runtime: TwinRuntime, state_dir: Path, *, build: bool = True, pull_timeout_s: float = 60
) -> str:
    """The base image for a platform: local, else pulled, else built, else IMAGE_UNAVAILABLE."""
    spec = lookup(platform)
    if spec is None:
        raise ImageUnavailable(
            f"unknown platform {platform.os} {platform.version}; known: {known_platforms()}; "
            "or name an image in asset.image",
            details={"platform": platform.model_dump()},
        )
    arch = ARCH_ALIASES.get(platform.arch, platform.arch)
    if arch != host_arch():
        raise ImageUnavailable(
            f"{spec.label} for {platform.arch}: this engine runs {host_arch()} twins only",
            details={"platform": platform.model_dump()},
        )
    if await runtime.image_exists(spec.local_ref):
        return spec.local_ref
    pull_error = await _pull(runtime, spec, pull_timeout_s)
    if pull_error is None:
        return spec.local_ref
    if build and spec.suite is not None and (spec.keyring is None or Path(spec.keyring).exists()):
        from patchtwin.twins.images import build_base  # images builds on platforms; imported late

        return await build_base(spec, runtime, state_dir)
    raise ImageUnavailable(
        f"no image for {spec.label}: not on this engine, the registry did not answer ({pull_error}); "
        f"{how_to_provide(spec)}",
        details={"platform": platform.model_dump(), "image": spec.local_ref},
    )


async def _pull(runtime: TwinRuntime, spec: PlatformSpec, timeout_s: float) -> str | None:
    """Pulls the public image and tags it as the local one; the error text when it cannot."""
    if not isinstance(runtime, DockerRuntime):
        return f"runtime {runtime.name} does not pull images"
    repo, _, tag = spec.public_image.partition(":")
    try:
        await asyncio.wait_for(runtime.docker.images.pull(repo, tag=tag or "latest"), timeout=timeout_s)
        await runtime.docker.images.tag(spec.public_image, repo=spec.local_ref.split(":")[0], tag=spec.version)
    except TimeoutError:
        return f"pull of {spec.public_image} timed out after {timeout_s:g}s"
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        return f"pull of {spec.public_image} failed: {str(message)[:300]}"
    log.info("pulled %s as %s", spec.public_image, spec.local_ref)
    return None


# -- package managers --------------------------------------------------------------------------


class PackageManager(ABC):
    """One package manager, seen the same way: installed packages with versions, one package's
    version, and how to install pinned versions (with the failure that names a missing pin)."""

    name: ClassVar[str]
    #: A command that exists only where this manager does (for detection inside a twin).
    probe: ClassVar[str]

    @abstractmethod
    def list_command(self) -> str:
        """Shell that prints every installed package."""

    @abstractmethod
    def parse_list(self, output: str) -> dict[str, str]:
        """name → version from `list_command`'s output."""

    def version_command(self, package: str) -> str:
        return self.list_command()

    def parse_version(self, output: str, package: str) -> str | None:
        return self.parse_list(output).get(package)

    @abstractmethod
    def install_command(self, pins: dict[str, str]) -> str:
        """Shell that installs exactly these versions (run while building the asset image)."""

    @abstractmethod
    def missing_pin(self, output: str, pins: dict[str, str]) -> str | None:
        """The package whose pinned version (or the package itself) the repositories lack."""


class Dpkg(PackageManager):
    name = "apt"
    probe = "dpkg-query"

    def list_command(self) -> str:
        return r"dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\n'"

    def version_command(self, package: str) -> str:
        return rf"dpkg-query -W -f='${{db:Status-Abbrev}}\t${{Package}}\t${{Version}}\n' '{package}'"

    def parse_list(self, output: str) -> dict[str, str]:
        packages: dict[str, str] = {}
        for line in output.splitlines():
            parts = line.split("\t")
            # `ii ` = wanted install, installed; `rc ` (removed, config left) is not installed.
            if len(parts) == 3 and parts[0].strip()[1:2] == "i":
                packages[parts[1]] = parts[2]
        return packages

    def install_command(self, pins: dict[str, str]) -> str:
        wanted = " ".join(f"{name}={version}" for name, version in sorted(pins.items()))
        return (
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
            f"--no-install-recommends --allow-downgrades {wanted} && rm -rf /var/lib/apt/lists/*"
        )

    def missing_pin(self, output: str, pins: dict[str, str]) -> str | None:
        for pattern in (r"Version '[^']*' for '([^']+)' was not found", r"Unable to locate package (\S+)"):
            if match := re.search(pattern, output):
                return match.group(1)
        return None


class Rpm(PackageManager):
    name = "dnf"
    probe = "rpm"
    installer: ClassVar[str] = "dnf"

    def list_command(self) -> str:
        return r"rpm -qa --qf '%{NAME}\t%{EPOCH}\t%{VERSION}-%{RELEASE}\n'"

    def version_command(self, package: str) -> str:
        return rf"rpm -q --qf '%{{NAME}}\t%{{EPOCH}}\t%{{VERSION}}-%{{RELEASE}}\n' '{package}'"

    def parse_list(self, output: str) -> dict[str, str]:
        packages: dict[str, str] = {}
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) != 3 or parts[0] == "gpg-pubkey":
                continue
            name, epoch, version = parts
            packages[name] = version if epoch in ("(none)", "0", "") else f"{epoch}:{version}"
        return packages

    def install_command(self, pins: dict[str, str]) -> str:
        wanted = " ".join(f"{name}-{version.split(':', 1)[-1]}" for name, version in sorted(pins.items()))
        return f"{self.installer} install -y {wanted} && {self.installer} clean all"

    def missing_pin(self, output: str, pins: dict[str, str]) -> str | None:
        patterns = (r"No match for argument: (\S+)", r"No package (\S+) available")
        for pattern in patterns:
            if match := re.search(pattern, output):
                return _pin_named(match.group(1), pins, "-")
        return None


class Yum(Rpm):
    name = "yum"
    installer = "yum"


class Apk(PackageManager):
    name = "apk"
    probe = "apk"

    def list_command(self) -> str:
        return "apk list --installed 2>/dev/null"

    def parse_list(self, output: str) -> dict[str, str]:
        packages: dict[str, str] = {}
        for line in output.splitlines():
            token = line.split(" ", 1)[0]
            # name-version-rN: the version starts at the last '-' followed by a digit before -rN
            if match := re.match(r"^(.+?)-(\d[^-]*-r\d+)$", token):
                packages[match.group(1)] = match.group(2)
        return packages

    def install_command(self, pins: dict[str, str]) -> str:
        wanted = " ".join(f"{name}={version}" for name, version in sorted(pins.items()))
        return f"apk add --no-cache {wanted}"

    def missing_pin(self, output: str, pins: dict[str, str]) -> str | None:
        for pattern in (r"^\s+(\S+?)=\S+ \(no such package\)", r"^\s+(\S+) \(no such package\)",
                        r"^\s+(\S+?)=\S+:\s*$"):
            if match := re.search(pattern, output, re.MULTILINE):
                return _pin_named(match.group(1), pins, "=")
        return None


def _pin_named(token: str, pins: dict[str, str], separator: str) -> str:
    """`openssl-3.0.7-99` → `openssl` when that is a pinned name."""
    for name in sorted(pins, key=len, reverse=True):
        if token == name or token.startswith(name + separator):
            return name
    return token


PACKAGE_MANAGERS: dict[str, PackageManager] = {m.name: m for m in (Dpkg(), Rpm(), Yum(), Apk())}


def package_manager(name: str) -> PackageManager:
    return PACKAGE_MANAGERS[name]


def detect_packages_script() -> str:
    """Shell for inside a twin: names the package manager (`pm<TAB>name`), then lists packages."""
    branches = []
    for manager in (PACKAGE_MANAGERS["apt"], PACKAGE_MANAGERS["dnf"], PACKAGE_MANAGERS["apk"]):
        branches.append(
            f"command -v {manager.probe} >/dev/null 2>&1; then printf 'pm\\t{manager.name}\\n'; "
            f"{manager.list_command()} 2>/dev/null | sed 's/^/pkg\\t/'"
        )
    return "if " + "\nelif ".join(branches) + "\nfi"


# -- service managers --------------------------------------------------------------------------

SYSTEMD_STATES = {"active": "running", "reloading": "running", "inactive": "stopped",
                  "deactivating": "stopped", "failed": "failed", "activating": "unknown"}


def service_state(manager: str, exit_code: int, output: str) -> ServiceState:
    """The uniform state from what a manager answered to `status`.

    systemd: `systemctl is-active` prints active / inactive / failed / ...;
    sysv and supervised commands: LSB status codes — 0 running, 1 and 2 dead with a pid or
    lock file left (failed), 3 not running (stopped), anything else unknown.
    """
    detail = output.strip()[:500]
    if manager == "systemd":
        word = detail.splitlines()[0].strip() if detail else ""
        state = SYSTEMD_STATES.get(word, "unknown")
        return ServiceState(state=state, manager="systemd", detail=detail)  # type: ignore[arg-type]
    if manager in ("sysv", "command"):
        lsb = {0: "running", 1: "failed", 2: "failed", 3: "stopped"}
        return ServiceState(state=lsb.get(exit_code, "unknown"), manager=manager, detail=detail)  # type: ignore[arg-type]
    return ServiceState(state="unknown", manager="none", detail=detail or "no service manager in the twin")


def decode_b64(text: str) -> str:
    try:
        return base64.b64decode(text).decode("utf-8", "replace")
    except ValueError:
        return ""
