"""Check specifications (what a request asks) and check results (what a twin showed).

Every family shares the readiness fields (`retries`, `interval`, `backoff`, `max_interval`,
`timeout`) and `name`/`critical`. Regular expressions are POSIX extended (`grep -E`), matched
inside the twin line by line; they are compiled here too, so a pattern that cannot compile is
refused with the request instead of failing in the twin.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

#: `version` of a package check: an optional operator, then the version (`>= 3.0.11-1~deb12u2`).
VERSION_SPEC = re.compile(r"^\s*(==|=|!=|<=|>=|<<|>>|<|>)?\s*([A-Za-z0-9.+~:_-]+)\s*$")
VERSION_OPS = {"=": "==", "==": "==", "!=": "!=", "<": "<", "<<": "<", "<=": "<=", ">": ">", ">>": ">",
               ">=": ">="}


def _regex(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


Regex = Annotated[str, Field(min_length=1, max_length=4096)]


class _CheckBase(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=200)
    critical: bool = True
    retries: int | None = Field(
        default=None, ge=0, le=10_000,
        description="retries after a failing attempt (default: none, or unlimited until `timeout` when that is set)",
    )
    interval: float = Field(default=1.0, gt=0, le=600, description="seconds before the first retry")
    backoff: float = Field(default=1.5, ge=1, le=10, description="each further wait is this many times longer")
    max_interval: float = Field(default=10.0, gt=0, le=3600, description="the longest wait between attempts")
    timeout: float | None = Field(
        default=None, gt=0, le=24 * 3600,
        description="readiness deadline in seconds from the start of the probe: no retry starts after it",
    )

    def default_name(self) -> str:
        raise NotImplementedError

    def attempt_budget_s(self) -> float:
        """How long one attempt of this check may take inside the twin (bounds the round)."""
        return 2.0

    def max_retries(self) -> int | None:
        """The retry bound; None means: until the deadline."""
        if self.retries is not None:
            return self.retries
        return None if self.timeout is not None else 0

    @model_validator(mode="after")
    def _fill_name(self) -> _CheckBase:
        if not self.name:
            self.name = self.default_name()
        return self


def _split_subject(data: Any, subject: str, label: str) -> Any:
    """The contract spells the subject as `name` (`{"type": "service", "name": "nginx"}`); it then
    also yields the display name. Give the subject field explicitly to set both apart."""
    if isinstance(data, dict) and subject not in data and isinstance(data.get("name"), str):
        data = dict(data)
        data[subject] = data["name"]
        data["name"] = f"{label} {data['name']}"
    return data


class PortCheck(_CheckBase):
    """Listening sockets from /proc/net/{tcp,tcp6,udp,udp6}; optionally a real connection."""

    type: Literal["port"] = "port"
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    family: Literal["any", "either", "ipv4", "ipv6"] = Field(
        default="any", description="`any` (alias `either`): a listener of either family will do"
    )
    listening: bool = Field(default=True, description="false: passes when nothing listens")
    connect: bool = Field(default=False, description="tcp only: also open a connection to the loopback address")

    @model_validator(mode="after")
    def _connect_needs_tcp(self) -> PortCheck:
        if self.connect and self.protocol != "tcp":
            raise ValueError("`connect` needs `protocol: tcp` (udp has no connection to open)")
        if self.connect and not self.listening:
            raise ValueError("`connect` asks for a listener; it cannot go with `listening: false`")
        return self

    def default_name(self) -> str:
        fam = "" if self.family in ("any", "either") else f" {self.family}"
        return f"port {self.port}/{self.protocol}{fam}"


class ServiceCheck(_CheckBase):
    """A service's state through the manager the twin actually has (detected in the twin)."""

    type: Literal["service"] = "service"
    service: str = Field(default="", max_length=128, validate_default=True)
    state: Literal["running", "stopped"] | None = "running"
    enabled: bool | None = Field(default=None, description="also require the service to start at boot (or not)")
    manager: Literal["auto", "systemd", "sysv", "supervisor", "runit", "openrc"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _split_name(cls, data: Any) -> Any:
        return _split_subject(data, "service", "service")

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str) -> str:
        if not value:
            raise ValueError("a service check needs the service's `name`")
        if not all(c.isalnum() or c in "._@:-" for c in value):
            raise ValueError(f"not a service name: {value!r}")
        return value

    @model_validator(mode="after")
    def _something_to_check(self) -> ServiceCheck:
        if self.state is None and self.enabled is None:
            raise ValueError("a service check needs `state` or `enabled`")
        return self

    def default_name(self) -> str:
        return f"service {self.service}"


class HttpCheck(_CheckBase):
    """One request from inside the twin (curl when the twin has it, else bash's /dev/tcp)."""

    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=4096)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, max_length=1024 * 1024)
    expect_status: int | list[int] = 200
    body_contains: str | None = Field(default=None, max_length=4096)
    body_regex: Regex | None = None
    max_latency_ms: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="one attempt's time limit")

    _valid_regex = field_validator("body_regex")(_regex)

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: int | list[int]) -> int | list[int]:
        codes = value if isinstance(value, list) else [value]
        if not codes:
            raise ValueError("`expect_status` needs at least one status")
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status (100-599)")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", key):
                raise ValueError(f"not a header name: {key!r}")
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {key} holds a line break")
        return value

    def default_name(self) -> str:
        return f"http {self.method} {self.url}"

    def statuses(self) -> list[int]:
        return self.expect_status if isinstance(self.expect_status, list) else [self.expect_status]

    def attempt_budget_s(self) -> float:
        return self.timeout_s + 1


class ProcessCheck(_CheckBase):
    """Processes by name (the kernel's 15-character `comm`) or by a regex over the command line."""

    type: Literal["process"] = "process"
    process: str | None = Field(default=None, max_length=128)
    cmdline: Regex | None = Field(default=None, description="regex over the command line (arguments joined by spaces)")
    min_count: int | None = Field(default=None, ge=0, le=100_000, description="default 1 (0 when `max_count` is 0)")
    max_count: int | None = Field(default=None, ge=0, le=100_000)
    user: str | None = Field(default=None, max_length=64, description="owner: a user name or a numeric uid")

    _valid_regex = field_validator("cmdline")(_regex)

    @model_validator(mode="before")
    @classmethod
    def _split_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cmdline" in data:
            return data  # with a command line regex, `name` is only the display name
        return _split_subject(data, "process", "process")

    @model_validator(mode="after")
    def _require_subject(self) -> ProcessCheck:
        if not self.process and not self.cmdline:
            raise ValueError("a process check needs the process `name` or a `cmdline` regex")
        if self.max_count is not None and self.min_count is not None and self.min_count > self.max_count:
            raise ValueError(f"`min_count` ({self.min_count}) is above `max_count` ({self.max_count})")
        return self

    def bounds(self) -> tuple[int, int | None]:
        low = self.min_count if self.min_count is not None else (0 if self.max_count == 0 else 1)
        return low, self.max_count

    def default_name(self) -> str:
        return f"process {self.process or self.cmdline}"


class PackageCheck(_CheckBase):
    """Installed or absent; `version` exact (`3.0.11-1`) or compared (`>= 3.0.11`) with the
    ordering of the twin's package manager (Debian's for dpkg, rpm's for rpm)."""

    type: Literal["package"] = "package"
    package: str = Field(default="", max_length=256, validate_default=True)
    version: str | None = Field(default=None, max_length=256)
    installed: bool = True

    @model_validator(mode="before")
    @classmethod
    def _split_name(cls, data: Any) -> Any:
        return _split_subject(data, "package", "package")

    @field_validator("package")
    @classmethod
    def _package_name(cls, value: str) -> str:
        if not value:
            raise ValueError("a package check needs the package `name`")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+_:@-]*", value):
            raise ValueError(f"not a package name: {value!r}")
        return value

    @field_validator("version")
    @classmethod
    def _version_spec(cls, value: str | None) -> str | None:
        if value is not None and not VERSION_SPEC.match(value):
            raise ValueError(
                f"not a version constraint: {value!r} (a version, optionally after one of "
                "=, ==, !=, <, <=, >, >=)"
            )
        return value

    @model_validator(mode="after")
    def _version_needs_installed(self) -> PackageCheck:
        if self.version is not None and not self.installed:
            raise ValueError("`version` cannot go with `installed: false`")
        return self

    def constraint(self) -> tuple[str, str] | None:
        """(operator, version), the operator normalised to ==, !=, <, <=, >, >=."""
        if self.version is None:
            return None
        match = VERSION_SPEC.match(self.version)
        assert match is not None  # validated
        return VERSION_OPS[match.group(1) or "="], match.group(2)

    def default_name(self) -> str:
        return f"package {self.package}"


class LogCheck(_CheckBase):
    """Lines added since the baseline (per file: inode and size at the baseline) matching `pattern`."""

    type: Literal["log"] = "log"
    path: str = Field(pattern=r"^/", max_length=4096, description="absolute; may be a glob (`/var/log/app/*.log`)")
    pattern: Regex
    max_count: int = Field(default=0, ge=0, description="passes while at most this many new lines match")

    _valid_regex = field_validator("pattern")(_regex)

    def default_name(self) -> str:
        return f"log {self.path}"


class CommandCheck(_CheckBase):
    """A shell command (`sh -c`) in the twin: exit code and what it printed."""

    type: Literal["command"] = "command"
    run: str = Field(min_length=1, max_length=65536)
    expect_exit: int = Field(default=0, ge=0, le=255)
    stdout_contains: str | None = Field(default=None, max_length=4096)
    stdout_regex: Regex | None = None
    stderr_contains: str | None = Field(default=None, max_length=4096)
    stderr_regex: Regex | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="one attempt's time limit")

    _valid_regex = field_validator("stdout_regex", "stderr_regex")(_regex)

    def default_name(self) -> str:
        return f"command {self.run[:60]}"

    def attempt_budget_s(self) -> float:
        return self.timeout_s + 1


class FileCheck(_CheckBase):
    """A path's existence, type, mode, owner, content and digest."""

    type: Literal["file"] = "file"
    path: str = Field(pattern=r"^/", max_length=4096)
    exists: bool = True
    kind: Literal["file", "directory", "symlink", "any"] = "any"
    mode: str | None = Field(default=None, pattern=r"^0?[0-7]{3,4}$", description="octal, e.g. `0644`")
    owner: str | None = Field(default=None, max_length=64)
    group: str | None = Field(default=None, max_length=64)
    contains: str | None = Field(default=None, max_length=4096)
    regex: Regex | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")

    _valid_regex = field_validator("regex")(_regex)

    @model_validator(mode="after")
    def _absent_means_nothing_else(self) -> FileCheck:
        if not self.exists:
            asked = [f for f in ("mode", "owner", "group", "contains", "regex", "sha256") if getattr(self, f)]
            if asked:
                raise ValueError(f"`exists: false` cannot go with {', '.join(asked)}")
        return self

    def wanted_mode(self) -> str | None:
        return None if self.mode is None else format(int(self.mode, 8), "o")

    def default_name(self) -> str:
        return f"file {self.path}"


class PerformanceCheck(_CheckBase):
    """`samples` timed HTTP requests (`url`) or commands (`run`): p50, p95 and max, with a limit on
    one of them, absolute (`max_ms`) or relative to the baseline's (`max_ratio`)."""

    type: Literal["performance"] = "performance"
    url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=4096)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    run: str | None = Field(default=None, min_length=1, max_length=65536)
    samples: int = Field(default=50, ge=1, le=1000)
    statistic: Literal["p50", "p95", "max"] = "p95"
    max_ms: float | None = Field(default=None, gt=0)
    max_ratio: float | None = Field(default=None, gt=0, description="limit = baseline's statistic times this")
    slack_ms: float = Field(default=5.0, ge=0, description="a relative limit is never tighter than baseline + this")
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="one sample's time limit")

    @model_validator(mode="after")
    def _one_target(self) -> PerformanceCheck:
        if (self.url is None) == (self.run is None):
            raise ValueError("a performance check needs exactly one of `url` (HTTP) or `run` (command)")
        if self.samples * self.timeout_s > 600:
            raise ValueError(f"`samples` * `timeout_s` = {self.samples * self.timeout_s:g}s; at most 600s")
        return self

    def default_name(self) -> str:
        return f"performance {self.url or (self.run or '')[:60]}"

    def attempt_budget_s(self) -> float:
        return self.samples * self.timeout_s + 1


Check = Annotated[
    PortCheck
    | ServiceCheck
    | HttpCheck
    | ProcessCheck
    | PackageCheck
    | LogCheck
    | CommandCheck
    | FileCheck
    | PerformanceCheck,
    Field(discriminator="type"),
]

CHECK_FAMILIES: tuple[str, ...] = (
    "port", "service", "http", "process", "package", "log", "command", "file", "performance",
)


def unique_names(checks: list[Any]) -> list[Any]:
    """Results are matched to checks by name (baseline vs after): two checks may not share one."""
    seen: dict[str, int] = {}
    for index, check in enumerate(checks):
        name = getattr(check, "name", None) or ""
        if name in seen:
            raise ValueError(
                f"checks {seen[name]} and {index} are both named {name!r}: give one a distinct `name`"
            )
        seen[name] = index
    return checks


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class CheckResult(BaseModel):
    """One check's outcome on one twin, with what was observed.

    `status` is never `passed` for a flaky check (its repeats disagreed): it is then the
    worst status seen, and `flaky` is true.
    """

    name: str
    type: str
    status: CheckStatus
    critical: bool = True
    message: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    observations: list[CheckStatus] = Field(
        default_factory=list, description="the status seen in each repeat of the suite"
    )
    attempts: int = Field(default=1, description="attempts in the first repeat (1 + retries used)")
    time_to_pass_s: float | None = Field(
        default=None, description="seconds from the start of the probe until the check first passed"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flaky(self) -> bool:
        return len(set(self.observations)) > 1


class SuiteResult(BaseModel):
    """The check suite on one twin: per-check results and how it was obtained."""

    results: list[CheckResult] = Field(default_factory=list)
    rounds: int = Field(default=0, description="repeats of the whole suite")
    execs: int = Field(default=0, description="execs into the twin, retry rounds included")
    duration_s: float = 0.0
    exec_durations_s: list[float] = Field(default_factory=list, description="wall time of each exec")

    def by_name(self) -> dict[str, CheckResult]:
        return {r.name: r for r in self.results}
