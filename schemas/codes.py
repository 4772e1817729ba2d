"""The one finite list of codes a verdict or dead-letter record can carry.

Each code says whether a retry could help; the README's error table is built from
the same text, and a test keeps the two in step.
"""

from enum import StrEnum


class Code(StrEnum):
    # the request
    INVALID_REQUEST = "INVALID_REQUEST"
    UNDECODABLE_MESSAGE = "UNDECODABLE_MESSAGE"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    DUPLICATE_RUN_ID = "DUPLICATE_RUN_ID"
    # the twin
    IMAGE_UNAVAILABLE = "IMAGE_UNAVAILABLE"
    TWIN_START_FAILED = "TWIN_START_FAILED"
    TWIN_NOT_READY = "TWIN_NOT_READY"
    TWIN_LOST = "TWIN_LOST"
    # the patch
    PATCH_FAILED = "PATCH_FAILED"
    PATCH_TIMEOUT = "PATCH_TIMEOUT"
    PATCH_OOM = "PATCH_OOM"
    PATCH_KILLED = "PATCH_KILLED"
    PATCH_INTERRUPTED = "PATCH_INTERRUPTED"
    # the checks
    CHECK_REGRESSED = "CHECK_REGRESSED"
    PERFORMANCE_LIMIT_EXCEEDED = "PERFORMANCE_LIMIT_EXCEEDED"
    CHECK_ERROR = "CHECK_ERROR"
    # warnings
    PATCH_STDERR = "PATCH_STDERR"
    OUTPUT_TRUNCATED = "OUTPUT_TRUNCATED"
    CHECK_PRE_EXISTING = "CHECK_PRE_EXISTING"
    CHECK_FLAKY = "CHECK_FLAKY"
    NONCRITICAL_REGRESSED = "NONCRITICAL_REGRESSED"
    NO_CHECKS = "NO_CHECKS"
    # the engine
    RUN_DEADLINE_EXCEEDED = "RUN_DEADLINE_EXCEEDED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


#: What each code means, for people (README, CLI). Every Code has an entry.
MEANING: dict[Code, str] = {
    Code.INVALID_REQUEST: "The request did not validate (the message lists each field error). "
    "Fix the request; a retry cannot help.",
    Code.UNDECODABLE_MESSAGE: "The message is not UTF-8 JSON and no run id could be read; "
    "it went to the dead-letter topic.",
    Code.MESSAGE_TOO_LARGE: "The message is over the size limit (default 1 MiB).",
    Code.DUPLICATE_RUN_ID: "A request reused a run id with a different body; the first run "
    "stands, the second request went to the dead-letter topic.",
    Code.IMAGE_UNAVAILABLE: "No image could be found, pulled or built for the asset's platform.",
    Code.TWIN_START_FAILED: "The twin container could not be created or started.",
    Code.TWIN_NOT_READY: "The asset's services did not come up before the readiness deadline.",
    Code.TWIN_LOST: "The twin disappeared while the run still needed it.",
    Code.PATCH_FAILED: "The patch exited with a non-zero code.",
    Code.PATCH_TIMEOUT: "The patch ran past its timeout and was killed.",
    Code.PATCH_OOM: "A process of the patch was killed for exceeding the twin's memory limit.",
    Code.PATCH_KILLED: "The patch was killed by a signal it did not send itself.",
    Code.PATCH_INTERRUPTED: "The executor stopped while the patch ran; the twin's state is "
    "unknown, so the run is not judged.",
    Code.CHECK_REGRESSED: "A critical check passed before the patch and fails after it.",
    Code.PERFORMANCE_LIMIT_EXCEEDED: "A performance check met its limit before the patch and "
    "exceeds it after (critical or not: a limit is a hard requirement). Re-running cannot "
    "help unless the measurement was noisy; see the samples in its evidence.",
    Code.CHECK_ERROR: "A check could not be evaluated (the probe itself failed).",
    Code.PATCH_STDERR: "The patch wrote to stderr (warning).",
    Code.OUTPUT_TRUNCATED: "The patch's output passed the cap and was truncated (warning).",
    Code.CHECK_PRE_EXISTING: "A check failed before and after the patch; not the patch's "
    "doing (warning).",
    Code.CHECK_FLAKY: "A check gave different results across repeats (warning).",
    Code.NONCRITICAL_REGRESSED: "A non-critical check regressed (warning).",
    Code.NO_CHECKS: "The request named no checks; only the patch's own ending was judged "
    "(warning).",
    Code.RUN_DEADLINE_EXCEEDED: "The run did not finish before its deadline.",
    Code.RETRIES_EXHAUSTED: "A transient failure (broker, database, Docker) outlasted the "
    "retries.",
    Code.INTERNAL_ERROR: "An unexpected fault inside patchtwin; the message has the details.",
}
