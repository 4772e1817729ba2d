"""The wire contract as pydantic models: events, their parts, topics and codes."""

from schemas.checks import CHECK_FAMILIES, Check, CheckResult, CheckStatus, SuiteResult
from schemas.codes import MEANING, Code
from schemas.events import (
    EVENTS,
    SCHEMA_VERSION,
    ChecksCompleted,
    CheckVerdict,
    Classification,
    Event,
    Issue,
    PatchApplied,
    PatchOutcome,
    RunContext,
    RunFailed,
    StageSpan,
    TwinReady,
    TwinRef,
    TwinReleased,
    TwinRequested,
    VerdictIssued,
    VerdictStatus,
)
from schemas.request import Asset, Patch, Platform, Resources
from schemas.topics import Topic

__all__ = [
    "CHECK_FAMILIES",
    "EVENTS",
    "MEANING",
    "SCHEMA_VERSION",
    "Asset",
    "Check",
    "CheckResult",
    "CheckStatus",
    "CheckVerdict",
    "ChecksCompleted",
    "Classification",
    "Code",
    "Event",
    "Issue",
    "Patch",
    "PatchApplied",
    "PatchOutcome",
    "Platform",
    "Resources",
    "RunContext",
    "RunFailed",
    "StageSpan",
    "SuiteResult",
    "Topic",
    "TwinReady",
    "TwinRef",
    "TwinReleased",
    "TwinRequested",
    "VerdictIssued",
    "VerdictStatus",
]
