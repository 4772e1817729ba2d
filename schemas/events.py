"""The events of the pipeline, one per topic (see CONTRACT.md).

Each event after TwinRequested carries the run forward (request, twin, baseline,
timeline), so a stage needs nothing but the event it consumes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.checks import Check, CheckResult, SuiteResult
from schemas.codes import Code
from schemas.request import RUN_ID_PATTERN, Asset, Patch
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


class TwinRef(BaseModel):
    runtime: Literal["docker"] = "docker"
    id: str
    name: str
    image: str


class TwinRequested(Event):
    topic: ClassVar[Topic] = Topic.TWIN_REQUESTED

    run_id: str = Field(default_factory=lambda: f"run-{uuid.uuid4()}", pattern=RUN_ID_PATTERN)
    asset: Asset
    patch: Patch
    checks: list[Check] = Field(default_factory=list, max_length=500)
    ttl_s: int = Field(default=24 * 3600, gt=0, le=30 * 24 * 3600)
    keep_twin: bool = False
    repeats: int = Field(default=2, ge=1, le=10)


class RunContext(BaseModel):
    """What every later stage needs to know about the run."""

    request: TwinRequested
    twin: TwinRef
    baseline: SuiteResult
    timeline: list[StageSpan] = Field(default_factory=list)


class TwinReady(Event):
    topic: ClassVar[Topic] = Topic.TWIN_READY
    context: RunContext


class PatchOutcome(BaseModel):
    exit_code: int | None
    signal: int | None = None
    duration_s: float
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    timed_out: bool = False
    oom_killed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.oom_killed)


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
    durations_s: dict[str, float] = Field(default_factory=dict)
    #: When each stage ran, for finding where the time went (`bench/`, `patchtwin show`).
    timeline: list[StageSpan] = Field(default_factory=list)
    keep_twin: bool = False


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
