"""Package managers seen one way (dpkg/apt, rpm with dnf or yum, apk): what is installed, how
to install pinned versions, which pin a failed install lacks; and the shell that finds out, in
a twin, which manager it has."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar


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
