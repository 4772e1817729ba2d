"""What a client sends: the asset to replicate, the patch to try, the checks to run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Asset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    platform: Platform
    image: str | None = Field(default=None, max_length=512)
    services: list[str] = Field(default_factory=list, max_length=64)
    resources: Resources | None = None
    #: Where the twin runs; absent: the configured default (`PATCHTWIN_DEFAULT_RUNTIME`).
    runtime: Literal["docker", "kubernetes"] | None = None
    kubernetes: KubernetesOptions | None = None

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
