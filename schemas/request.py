"""What a client sends: the asset to replicate, the patch to try, the checks to run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


class Platform(BaseModel):
    model_config = ConfigDict(extra="ignore")

    os: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    arch: str = "amd64"

    @field_validator("os", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class Resources(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cpus: float = Field(default=2.0, gt=0, le=64)
    memory_mb: int = Field(default=4096, ge=16, le=1024 * 1024)
    pids: int = Field(default=1024, ge=16, le=1_000_000)


#: Capabilities an asset may add back on top of the default set (README "Isolation"). Left out
#: on purpose: SYS_ADMIN (mount, namespaces), DAC_READ_SEARCH (open_by_handle_at escapes),
#: SYS_MODULE, SYS_RAWIO, SYS_BOOT, SYS_TIME, SYS_RESOURCE (lifts the rlimits), NET_ADMIN,
#: BPF, PERFMON, MAC_*, SYSLOG, AUDIT_CONTROL: each reaches past the twin or its limits.
ExtraCapability = Literal[
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL",  # the default set
    "AUDIT_WRITE", "FSETID", "IPC_LOCK", "LEASE", "LINUX_IMMUTABLE", "MKNOD", "NET_RAW",
    "SETFCAP", "SETPCAP", "SYS_CHROOT", "SYS_NICE", "SYS_PTRACE",
]


class Relaxations(BaseModel):
    """What an asset may loosen in its twin's confinement; the verdict's `isolation.relaxed`
    lists every relaxation that was applied."""

    model_config = ConfigDict(extra="forbid")

    network: Literal["none", "internal"] = Field(
        default="none",
        description="`internal`: a network of the run's own, reaching neither the host nor other runs",
    )
    capabilities: list[ExtraCapability] = Field(default_factory=list, max_length=16)
    no_new_privileges: bool = Field(
        default=True, description="false lets setuid programs (sudo, su) gain privileges"
    )


class Asset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    platform: Platform
    image: str | None = Field(default=None, max_length=512)
    services: list[str] = Field(default_factory=list, max_length=64)
    resources: Resources | None = None
    isolation: Relaxations | None = None
    runtime: Literal["docker"] = "docker"

    @field_validator("services")
    @classmethod
    def _service_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or len(name) > 128 or not all(c.isalnum() or c in "._@-" for c in name):
                raise ValueError(f"not a service name: {name!r}")
        return names


class Patch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    script: str = Field(min_length=1, max_length=256 * 1024)
    interpreter: str = Field(default="/bin/sh", pattern=r"^/[A-Za-z0-9_./-]+$")
    timeout_s: float = Field(default=600, gt=0, le=24 * 3600)
