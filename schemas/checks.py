"""Check specifications (what a request asks) and check results (what a twin showed)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _CheckBase(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=200)
    critical: bool = True

    def default_name(self) -> str:
        raise NotImplementedError

    @model_validator(mode="after")
    def _fill_name(self) -> _CheckBase:
        if not self.name:
            self.name = self.default_name()
        return self


class PortCheck(_CheckBase):
    type: Literal["port"] = "port"
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    family: Literal["any", "ipv4", "ipv6"] = "any"

    def default_name(self) -> str:
        return f"port {self.port}/{self.protocol}"


class ServiceCheck(_CheckBase):
    type: Literal["service"] = "service"
    service: str = ""
    state: Literal["running", "stopped"] = "running"

    # The contract spells the subject as `name` (`{"type": "service", "name": "nginx"}`);
    # it then also yields the display name. Give `service` to set both apart.
    @model_validator(mode="before")
    @classmethod
    def _split_name(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "service" not in data and isinstance(data.get("name"), str):
                data["service"] = data["name"]
                data["name"] = f"service {data['name']}"
        return data

    @model_validator(mode="after")
    def _require_service(self) -> ServiceCheck:
        if not self.service:
            raise ValueError("a service check needs the service's `name`")
        return self

    def default_name(self) -> str:
        return f"service {self.service}"


class HttpCheck(_CheckBase):
    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"] = "GET"
    expect_status: int | list[int] = 200
    body_contains: str | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=120)

    def default_name(self) -> str:
        return f"http {self.method} {self.url}"

    def statuses(self) -> list[int]:
        return self.expect_status if isinstance(self.expect_status, list) else [self.expect_status]


class ProcessCheck(_CheckBase):
    type: Literal["process"] = "process"
    process: str = ""
    min_count: int = Field(default=1, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _split_name(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "process" not in data and isinstance(data.get("name"), str):
                data["process"] = data["name"]
                data["name"] = f"process {data['name']}"
        return data

    @model_validator(mode="after")
    def _require_process(self) -> ProcessCheck:
        if not self.process:
            raise ValueError("a process check needs the process `name`")
        return self

    def default_name(self) -> str:
        return f"process {self.process}"


class PackageCheck(_CheckBase):
    type: Literal["package"] = "package"
    package: str = ""
    version: str | None = None
    installed: bool = True

    @model_validator(mode="before")
    @classmethod
    def _split_name(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "package" not in data and isinstance(data.get("name"), str):
                data["package"] = data["name"]
                data["name"] = f"package {data['name']}"
        return data

    @model_validator(mode="after")
    def _require_package(self) -> PackageCheck:
        if not self.package:
            raise ValueError("a package check needs the package `name`")
        return self

    def default_name(self) -> str:
        return f"package {self.package}"


class LogCheck(_CheckBase):
    type: Literal["log"] = "log"
    path: str = Field(pattern=r"^/", max_length=4096)
    pattern: str = Field(min_length=1, max_length=4096)

    def default_name(self) -> str:
        return f"log {self.path}"


class CommandCheck(_CheckBase):
    type: Literal["command"] = "command"
    run: str = Field(min_length=1, max_length=65536)
    expect_exit: int = Field(default=0, ge=0, le=255)
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    def default_name(self) -> str:
        return f"command {self.run[:60]}"


Check = Annotated[
    PortCheck | ServiceCheck | HttpCheck | ProcessCheck | PackageCheck | LogCheck | CommandCheck,
    Field(discriminator="type"),
]

CHECK_FAMILIES: tuple[str, ...] = ("port", "service", "http", "process", "package", "log", "command")


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class CheckResult(BaseModel):
    """One check's outcome on one twin at one moment, with what was observed."""

    name: str
    type: str
    status: CheckStatus
    critical: bool = True
    message: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    observations: list[CheckStatus] = Field(
        default_factory=list, description="the status seen in each repeat of the suite"
    )

    @property
    def flaky(self) -> bool:
        return len(set(self.observations)) > 1


class SuiteResult(BaseModel):
    """The check suite on one twin: per-check results and how it was obtained."""

    results: list[CheckResult] = Field(default_factory=list)
    rounds: int = 0
    execs: int = 0
    duration_s: float = 0.0

    def by_name(self) -> dict[str, CheckResult]:
        return {r.name: r for r in self.results}
