"""What a twin *is* at one moment (a system-state snapshot), what a patch changed (the diff
of two snapshots), and how close the twin is to the asset it stands for (fidelity)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ServiceStateName = Literal["running", "stopped", "failed", "unknown"]


class Socket(BaseModel):
    """A listening socket read from /proc/net: `tcp6` with `::` is an IPv6(-only) listener."""

    proto: Literal["tcp", "tcp6", "udp", "udp6"]
    address: str
    port: int

    def key(self) -> tuple[str, str, int]:
        return (self.proto, self.address, self.port)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto} {host}:{self.port}"


class ServiceState(BaseModel):
    """One service's state, the same four words whatever manager runs it."""

    state: ServiceStateName
    manager: Literal["systemd", "sysv", "command", "none"]
    detail: str = ""


class SystemState(BaseModel):
    """A snapshot taken in one exec inside the twin."""

    taken_at: datetime
    packages: dict[str, str] = Field(default_factory=dict, description="name → installed version")
    package_manager: str = ""
    listening: list[Socket] = Field(default_factory=list)
    processes: dict[str, int] = Field(default_factory=dict, description="command name → count")
    services: dict[str, ServiceState] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="path → sha256 (under `roots`)")
    roots: list[str] = Field(default_factory=list)
    files_truncated: bool = Field(default=False, description="more files than the cap; the rest unhashed")
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    sysctls: dict[str, str] = Field(default_factory=dict)
    duration_s: float = 0.0


class PackageVersion(BaseModel):
    name: str
    version: str


class PackageChange(BaseModel):
    """A package whose version changed; `before` → `after` (an upgrade, or a downgrade)."""

    name: str
    before: str
    after: str


class ServiceChange(BaseModel):
    name: str
    before: ServiceStateName | Literal["absent"]
    after: ServiceStateName | Literal["absent"]


class ValueChange(BaseModel):
    name: str
    before: str | None
    after: str | None


class StateDiff(BaseModel):
    """What changed between two snapshots of the same twin (before and after the patch)."""

    packages_added: list[PackageVersion] = Field(default_factory=list)
    packages_removed: list[PackageVersion] = Field(default_factory=list)
    packages_changed: list[PackageChange] = Field(default_factory=list)
    ports_opened: list[Socket] = Field(default_factory=list)
    ports_closed: list[Socket] = Field(default_factory=list)
    services_changed: list[ServiceChange] = Field(default_factory=list)
    files_added: list[str] = Field(default_factory=list)
    files_removed: list[str] = Field(default_factory=list)
    files_changed: list[str] = Field(default_factory=list)
    users_added: list[str] = Field(default_factory=list)
    users_removed: list[str] = Field(default_factory=list)
    groups_added: list[str] = Field(default_factory=list)
    groups_removed: list[str] = Field(default_factory=list)
    sysctls_changed: list[ValueChange] = Field(default_factory=list)
    processes_started: list[str] = Field(default_factory=list)
    processes_stopped: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)

    def summary(self) -> str:
        """One line a person can read, e.g. `1 package added, 1 port opened, 1 file changed`."""
        parts = []
        for name in type(self).model_fields:
            count = len(getattr(self, name))
            if count:
                noun, verb = name.split("_", 1)
                singular = noun[:-2] if noun == "processes" else noun[:-1]
                parts.append(f"{count} {noun if count > 1 else singular} {verb}")
        return ", ".join(parts) or "no change"


class Mismatch(BaseModel):
    """Something the asset declares that the twin does not have as declared."""

    kind: Literal["package", "service", "file", "port"]
    name: str
    expected: str
    actual: str | None


class Fidelity(BaseModel):
    """How close the twin is to the asset: declared facts met / declared facts, as 0 to 100."""

    score: float = Field(ge=0, le=100)
    declared: int = 0
    matched: int = 0
    mismatches: list[Mismatch] = Field(default_factory=list)

    def summary(self) -> str:
        if not self.declared:
            return "nothing declared to compare"
        missed = ", ".join(f"{m.kind} {m.name}" for m in self.mismatches[:5])
        return f"{self.score:g}% ({self.matched}/{self.declared})" + (f"; differs: {missed}" if missed else "")


class Provisioning(BaseModel):
    """How the twin came to be: which image, whether it was built or reused, how long it took."""

    base_image: str
    image: str
    image_built: bool = False
    build_s: float = 0.0
    time_to_ready_s: float = 0.0
    managers: dict[str, str] = Field(default_factory=dict, description="service → manager that runs it")
