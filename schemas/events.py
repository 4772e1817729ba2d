"""The events of the pipeline, one per topic (see docs/contract.md).

Each event after TwinRequested carries the run forward (request, twin, baseline,
timeline), so a stage needs nothing but the event it consumes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.checks import Check, CheckResult, SuiteResult, unique_names
from schemas.codes import Code
from schemas.request import RUN_ID_PATTERN, Asset, Patch
from schemas.state import Fidelity, Provisioning, StateDiff, SystemState
from schemas.topics import Topic

SCHEMA_VERSION = "1"


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


class Event(BaseModel):
    """Fields every event has. `topic` and `ce_type` tie the class to the wire."""

    model_config = ConfigDict(extra="ignore")
    topic: ClassVar[Topic]

    event_id: str = Field(default_factory=_new_id)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    schema_version: Literal["1"] = "1"
    occurred_at: datetime = Field(default_factory=_now)

    @classmethod
    def ce_type(cls) -> str:
        return f"io.patchtwin.{cls.topic.value}.v{SCHEMA_VERSION}"


class StageSpan(BaseModel):
    stage: str
    started_at: datetime
    finished_at: datetime

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


class CloneSummary(BaseModel):
    """What was copied from a source namespace into a Kubernetes twin's namespace."""

    source_namespace: str
    workload: str
    copied: list[str] = Field(default_factory=list, description="KIND/NAME of every copied object")
    placeholder_secrets: list[str] = Field(
        default_factory=list, description="Secrets recreated with the same keys and placeholder values"
    )


class Isolation(BaseModel):
    """How a twin is confined (docs/isolation.md): what `docker inspect` would show, and
    `relaxed`, each loosening the asset asked for (empty for the hardened default)."""

    network: str = "none"
    capabilities: list[str] = Field(default_factory=list, description="added back after dropping ALL")
    no_new_privileges: bool = True
    seccomp: str = "default"
    runtime: str | None = Field(default=None, description="OCI runtime (e.g. runsc); null: the engine's default")
    memory_mb: int | None = None
    cpus: float | None = None
    pids: int | None = None
    tmpfs_mb: int | None = None
    nofile: int | None = None
    fsize_mb: int | None = None
    relaxed: list[str] = Field(default_factory=list)


class TwinRef(BaseModel):
    runtime: Literal["docker", "kubernetes"] = "docker"
    id: str
    name: str
    image: str
    isolation: Isolation | None = None
    #: Kubernetes twins only: where the twin Pod is.
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    clone: CloneSummary | None = None


class TwinRequested(Event):
    topic: ClassVar[Topic] = Topic.TWIN_REQUESTED

    run_id: str = Field(default_factory=lambda: f"run-{uuid.uuid4()}", pattern=RUN_ID_PATTERN)
    asset: Asset
    patch: Patch
    checks: list[Check] = Field(default_factory=list, max_length=500)
    ttl_s: int = Field(default=24 * 3600, gt=0, le=30 * 24 * 3600)
    keep_twin: bool = False
    repeats: int = Field(default=2, ge=1, le=10)
    rerun_of: str | None = Field(
        default=None, pattern=RUN_ID_PATTERN,
        description="the run this request repeats (`patchtwin rerun`): its patch inputs must have the "
        "sha256 recorded for that run, else the verdict is an error RERUN_INPUT_CHANGED")

    _unique_check_names = field_validator("checks")(unique_names)


class RunContext(BaseModel):
    """What every later stage needs to know about the run."""

    request: TwinRequested
    twin: TwinRef
    baseline: SuiteResult
    timeline: list[StageSpan] = Field(default_factory=list)
    #: The unpatched twin's system state, its likeness to the asset, and how it was made.
    state: SystemState | None = None
    fidelity: Fidelity | None = None
    provisioning: Provisioning | None = None


class TwinReady(Event):
    topic: ClassVar[Topic] = Topic.TWIN_READY
    context: RunContext


class PackageChange(BaseModel):
    """A package of the patch: the version asked for, and what dpkg had before and after."""

    name: str
    requested: str
    before: str | None = None
    after: str | None = None


#: The steps of applying a patch, in order.
PatchStep = Literal["artifacts", "packages", "script"]


class PatchOutcome(BaseModel):
    """How the patch ended, exactly as observed in the twin (docs/request.md, "Patches").

    `exit_code` is None when a signal ended the patch's process (`signal`) or when its end was
    never seen (`abandoned`). An `exit 137` is exit code 137, not signal 9."""

    exit_code: int | None
    signal: int | None = Field(default=None, description="the signal that ended the patch's process")
    duration_s: float
    stdout: str = Field(default="", description="capped: head and tail, the middle cut when over the cap")
    stderr: str = ""
    stdout_bytes: int = Field(default=0, description="bytes the patch wrote to stdout, all of them")
    stderr_bytes: int = 0
    truncated: bool = Field(default=False, description="a stream passed the output cap (OUTPUT_TRUNCATED)")
    timed_out: bool = False
    oom_killed: bool = Field(default=False, description="the twin's memory cgroup OOM-killed a process "
                             "while the patch ran")
    abandoned: bool = Field(default=False, description="the exec outlived timeout + grace; the twin was "
                            "stopped from outside")
    observed_by: str | None = Field(default=None, description="supervisor (exact) | timeout (no perl in "
                                    "the twin: exit-code heuristics) | backstop")
    step: PatchStep = Field(
        default="script", description="the step whose ending this is (the last one that ran)")
    user: str | None = None
    packages: list[PackageChange] = Field(default_factory=list, description="the patch's packages, "
                                          "before and after")
    #: What the patch changed in the twin (packages, ports, services, files, users, sysctls).
    state_diff: StateDiff | None = None


class PatchApplied(Event):
    topic: ClassVar[Topic] = Topic.PATCH_APPLIED
    context: RunContext
    outcome: PatchOutcome


class ChecksCompleted(Event):
    topic: ClassVar[Topic] = Topic.CHECKS_COMPLETED
    context: RunContext
    outcome: PatchOutcome
    after: SuiteResult


class Classification(StrEnum):
    REGRESSION = "regression"
    FIXED = "fixed"
    PRE_EXISTING = "pre_existing"
    STABLE = "stable"
    FLAKY = "flaky"


class VerdictStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class Issue(BaseModel):
    code: Code
    message: str
    check: str | None = None


class CheckVerdict(BaseModel):
    name: str
    type: str
    critical: bool
    baseline: str
    after: str
    classification: Classification
    evidence: dict[str, Any] = Field(default_factory=dict)
    baseline_evidence: dict[str, Any] = Field(default_factory=dict)
    attempts: int = Field(default=1, description="after the patch: attempts in the first repeat (1 + retries used)")
    time_to_pass_s: float | None = Field(
        default=None, description="after the patch: seconds from the start of the probe until the check first passed"
    )
    observations: list[str] = Field(
        default_factory=list, description="after the patch: the status seen in each repeat (they differ when flaky)"
    )


class ConfidenceFactor(BaseModel):
    """One input of the confidence score as it was used, so a person can redo the sum."""

    name: str
    value: float = Field(ge=0, le=1, description="the factor, 0 to 1")
    observed: str = Field(description="what the factor was computed from")
    applied: bool = Field(default=True, description="whether this status's formula uses it")


class VerdictIssued(Event):
    topic: ClassVar[Topic] = Topic.VERDICT_ISSUED

    status: VerdictStatus
    confidence: float = Field(ge=0, le=100)
    summary: str
    issues: list[Issue] = Field(default_factory=list)
    warnings: list[Issue] = Field(default_factory=list)
    checks: list[CheckVerdict] = Field(default_factory=list)
    asset_id: str | None = None
    patch_id: str | None = None
    patch: PatchOutcome | None = None
    confidence_inputs: dict[str, float] = Field(default_factory=dict)
    #: Each factor of the confidence with what it came from, and the sum as it was done.
    confidence_factors: list[ConfidenceFactor] = Field(default_factory=list)
    confidence_formula: str = ""
    #: One line on what the patch changed in the twin (the whole diff is in `patch.state_diff`).
    state_diff_summary: str = ""
    durations_s: dict[str, float] = Field(default_factory=dict)
    #: When each stage ran, for finding where the time went (`bench/`, `patchtwin show`).
    timeline: list[StageSpan] = Field(default_factory=list)
    keep_twin: bool = False
    isolation: Isolation | None = None


class RunFailed(Event):
    topic: ClassVar[Topic] = Topic.RUN_FAILED

    stage: str
    code: Code
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
    asset_id: str | None = None
    patch_id: str | None = None
    timeline: list[StageSpan] = Field(default_factory=list)
    keep_twin: bool = False


class TwinReleased(Event):
    topic: ClassVar[Topic] = Topic.TWIN_RELEASED

    twins: list[str] = Field(default_factory=list, description="names of the removed twins")
    reason: str
    kept: bool = False


EVENTS: tuple[type[Event], ...] = (
    TwinRequested,
    TwinReady,
    PatchApplied,
    ChecksCompleted,
    VerdictIssued,
    RunFailed,
    TwinReleased,
)

__all__ = [
    "EVENTS",
    "SCHEMA_VERSION",
    "CheckResult",
    "CheckVerdict",
    "ChecksCompleted",
    "Classification",
    "ConfidenceFactor",
    "Event",
    "Issue",
    "PatchApplied",
    "PatchOutcome",
    "RunContext",
    "RunFailed",
    "StageSpan",
    "TwinReady",
    "TwinRef",
    "TwinReleased",
    "TwinRequested",
    "VerdictIssued",
    "VerdictStatus",
]
_ = Check  # re-exported for the schema generator
