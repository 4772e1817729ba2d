"""Topic names of the wire contract (docs/contract.md). A prefix may be configured."""

from enum import StrEnum


class Topic(StrEnum):
    TWIN_REQUESTED = "twin.requested"
    TWIN_READY = "twin.ready"
    PATCH_APPLIED = "patch.applied"
    CHECKS_COMPLETED = "checks.completed"
    VERDICT_ISSUED = "verdict.issued"
    RUN_FAILED = "run.failed"
    TWIN_RELEASED = "twin.released"
    DLQ = "patchtwin.dlq"
