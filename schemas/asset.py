"""The asset a twin stands for: its platform, and optionally what production really has on it.

Only `id` and `platform` are required (the contract's minimum). The rest describes the
production host so the twin can be built like it and measured against it: packages pinned
to versions, how each service starts, files, environment, ports, resources. Everything here
is additive to the contract's asset; a plain `services: ["nginx"]` still means what it did.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Package names as Debian, RPM and Alpine spell them; nothing a shell would read specially.
PACKAGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9+._-]{0,127}$"
#: Versions as dpkg (`1:2.3-4+deb12u1~bpo`), rpm (`2:1.1.1k-12.el8_9`) and apk (`1.2.4-r2`) write them.
PACKAGE_VERSION = r"^[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,127}$"
SERVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"


class Platform(BaseModel):
    model_config = ConfigDict(extra="ignore")

    os: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    arch: str = Field(default="amd64", pattern=r"^[a-z0-9_]+$", max_length=16)

    @field_validator("os", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class Resources(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cpus: float = Field(default=2.0, gt=0, le=64)
    memory_mb: int = Field(default=4096, ge=16, le=1024 * 1024)
    pids: int = Field(default=1024, ge=16, le=1_000_000)


class ServiceSpec(BaseModel):
    """How one service starts. `auto` picks systemd (when it is PID 1), else sysv, else `command`."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=SERVICE_NAME)
    manager: Literal["auto", "systemd", "sysv", "command"] = "auto"
    #: For `command`: run under supervision (own session, pid file, log under /var/log/patchtwin).
    command: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _command_needs_command(self) -> ServiceSpec:
        if self.manager == "command" and not self.command:
            raise ValueError(f"service {self.name}: manager `command` needs `command`")
        if self.command and self.manager == "auto":
            self.manager = "command"
        return self


class FileSpec(BaseModel):
    """A file production has: written into the asset image, and compared for fidelity."""

    model_config = ConfigDict(extra="ignore")

    path: str = Field(pattern=r"^/[^\x00]*$", max_length=4096)
    content: str = Field(max_length=256 * 1024)
    mode: int = Field(default=0o644, ge=0, le=0o7777)

    @field_validator("path")
    @classmethod
    def _no_dotdot(cls, path: str) -> str:
        if ".." in path.split("/") or path.rstrip("/") == "":
            raise ValueError(f"not an absolute file path without '..': {path!r}")
        return path

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: object) -> object:
        """`"0644"` and `"644"` are octal, as people write modes; an int is taken as is."""
        if isinstance(value, str):
            try:
                return int(value, 8)
            except ValueError as exc:
                raise ValueError(f"not an octal mode: {value!r}") from exc
        return value


class PortSpec(BaseModel):
    """A port production listens on: the twin is not ready until it listens too."""

    model_config = ConfigDict(extra="ignore")

    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class PortReady(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["port"] = "port"
    port: int = Field(ge=1, le=65535)


class HttpReady(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^http://[^\s/]+(/\S*)?$", max_length=2048)
    expect_status: int = Field(default=200, ge=100, le=599)


ReadyCondition = Annotated[PortReady | HttpReady, Field(discriminator="type")]


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
WORKLOAD = r"^(Deployment|StatefulSet)/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class KubernetesOptions(BaseModel):
    """How a twin runs in Kubernetes (only read when `asset.runtime` is `kubernetes`)."""

    model_config = ConfigDict(extra="ignore")

    #: `restricted`: non-root, read-only root filesystem, all capabilities dropped, namespace
    #: enforcing Pod Security `restricted`. `baseline`: root with the Docker twin's capability
    #: set and a writable root filesystem, for patches that need root (apt, service restarts);
    #: the namespace enforces `baseline` and warns/audits `restricted`.
    profile: Literal["restricted", "baseline"] = "restricted"
    run_as_user: int | None = Field(default=None, ge=1, le=2**31 - 1)
    #: e.g. `gvisor`; the cluster must have this RuntimeClass.
    runtime_class: str | None = Field(default=None, pattern=DNS_LABEL)
    #: Clone this namespace's Deployments, StatefulSets, Services and ConfigMaps (Secrets as
    #: placeholders) into the run's namespace, and run the patch against `workload`.
    source_namespace: str | None = Field(default=None, pattern=DNS_LABEL)
    #: `Deployment/NAME` or `StatefulSet/NAME` in the source namespace.
    workload: str | None = Field(default=None, pattern=WORKLOAD)
    #: The workload's container the patch runs in (default: its first).
    container: str | None = Field(default=None, pattern=DNS_LABEL)

    @model_validator(mode="after")
    def _clone_needs_workload(self) -> KubernetesOptions:
        if (self.source_namespace is None) != (self.workload is None):
            raise ValueError("source_namespace and workload go together")
        return self


#: Capabilities an asset may add back on top of the default set (docs/isolation.md). Left out
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
    #: An explicit image is the twin as is: nothing is built on it; `packages` and `files`
    #: then only say what production has, and fidelity measures the image against them.
    image: str | None = Field(default=None, max_length=512)
    services: list[str | ServiceSpec] = Field(default_factory=list, max_length=64)
    resources: Resources | None = None
    isolation: Relaxations | None = None
    #: Where the twin runs; absent: the configured default (`PATCHTWIN_DEFAULT_RUNTIME`).
    runtime: Literal["docker", "kubernetes"] | None = None
    kubernetes: KubernetesOptions | None = None
    packages: dict[str, str] = Field(default_factory=dict, description="name → pinned version")
    files: list[FileSpec] = Field(default_factory=list, max_length=256)
    environment: dict[str, str] = Field(default_factory=dict)
    ports: list[PortSpec] = Field(default_factory=list, max_length=64)
    #: Beyond services running and `ports` listening: what must hold before the baseline.
    readiness: list[ReadyCondition] = Field(default_factory=list, max_length=32)

    @field_validator("services")
    @classmethod
    def _service_names(cls, services: list[str | ServiceSpec]) -> list[str | ServiceSpec]:
        for service in services:
            if isinstance(service, str) and not re.match(SERVICE_NAME, service):
                raise ValueError(f"not a service name: {service!r}")
        return services

    @field_validator("packages")
    @classmethod
    def _package_pins(cls, packages: dict[str, str]) -> dict[str, str]:
        if len(packages) > 2000:
            raise ValueError("at most 2000 pinned packages")
        for name, version in packages.items():
            if not re.match(PACKAGE_NAME, name):
                raise ValueError(f"not a package name: {name!r}")
            if not isinstance(version, str) or not re.match(PACKAGE_VERSION, version):
                raise ValueError(f"package {name}: not a version: {version!r}")
        return packages

    @field_validator("environment")
    @classmethod
    def _env_names(cls, environment: dict[str, str]) -> dict[str, str]:
        for name in environment:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", name):
                raise ValueError(f"not an environment variable name: {name!r}")
        return environment

    @property
    def service_specs(self) -> list[ServiceSpec]:
        """Every service as a spec: a bare name starts the way `auto` decides."""
        return [ServiceSpec(name=s) if isinstance(s, str) else s for s in self.services]

    @property
    def builds_image(self) -> bool:
        """Whether the twin needs an image built for this asset (pins, files or environment; no
        explicit image)."""
        return self.image is None and bool(self.packages or self.files or self.environment)
