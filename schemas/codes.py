"""The one finite list of codes a verdict or dead-letter record can carry.

Each code says whether a retry could help; docs/errors.md's table is written from the same
text (`python -m patchtwin.cli.docs`), and a test keeps the two in step.
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
    PACKAGE_VERSION_UNAVAILABLE = "PACKAGE_VERSION_UNAVAILABLE"
    IMAGE_BUILD_FAILED = "IMAGE_BUILD_FAILED"
    TWIN_START_FAILED = "TWIN_START_FAILED"
    TWIN_NOT_READY = "TWIN_NOT_READY"
    TWIN_LOST = "TWIN_LOST"
    RUNTIME_UNAVAILABLE = "RUNTIME_UNAVAILABLE"
    CLONE_FAILED = "CLONE_FAILED"
    # the patch
    PATCH_FAILED = "PATCH_FAILED"
    PATCH_TIMEOUT = "PATCH_TIMEOUT"
    PATCH_OOM = "PATCH_OOM"
    PATCH_KILLED = "PATCH_KILLED"
    PATCH_INTERRUPTED = "PATCH_INTERRUPTED"
    PATCH_INPUT_UNAVAILABLE = "PATCH_INPUT_UNAVAILABLE"
    RERUN_INPUT_CHANGED = "RERUN_INPUT_CHANGED"
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
    SECRETS_PLACEHOLDERS = "SECRETS_PLACEHOLDERS"
    # the engine
    RUN_DEADLINE_EXCEEDED = "RUN_DEADLINE_EXCEEDED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # the command line
    RUN_NOT_FOUND = "RUN_NOT_FOUND"


#: What each code means, for people (docs/errors.md, CLI). Every Code has an entry.
MEANING: dict[Code, str] = {
    Code.INVALID_REQUEST: "The request did not validate (the message lists each field error). "
    "Fix the request; a retry cannot help.",
    Code.UNDECODABLE_MESSAGE: "The message is not UTF-8 JSON and no run id could be read; "
    "it went to the dead-letter topic.",
    Code.MESSAGE_TOO_LARGE: "The message is over the size limit (default 1 MiB).",
    Code.DUPLICATE_RUN_ID: "A request reused a run id with a different body; the first run "
    "stands, the second request went to the dead-letter topic.",
    Code.IMAGE_UNAVAILABLE: "No image could be found, pulled or built for the asset's platform.",
    Code.PACKAGE_VERSION_UNAVAILABLE: "A package version the asset pins is not in the platform's "
    "repositories (the message names the package). Fix the pin or the mirror; a retry cannot help.",
    Code.IMAGE_BUILD_FAILED: "Building the asset's image failed for another reason (the message has the "
    "build's last output); a retry may help when the mirror was unreachable.",
    Code.TWIN_START_FAILED: "The twin container could not be created or started.",
    Code.TWIN_NOT_READY: "The asset's services did not come up before the readiness deadline.",
    Code.TWIN_LOST: "The twin disappeared while the run still needed it.",
    Code.RUNTIME_UNAVAILABLE: "The runtime the request asked for (docker or kubernetes) is not "
    "configured in this deployment; configure it, a retry cannot help.",
    Code.CLONE_FAILED: "The source namespace or workload to clone could not be read or copied "
    "(missing, forbidden, or its Pods never became ready).",
    Code.PATCH_FAILED: "The patch (its script, or the install of its packages) exited with a non-zero "
    "code. The patch's own doing; a retry of the same patch gives the same.",
    Code.PATCH_TIMEOUT: "The patch ran past its timeout; its processes were killed (or, when that "
    "failed, the twin stopped). Raise `patch.timeout_s` if it needs longer.",
    Code.PATCH_OOM: "A process was OOM-killed in the twin's memory cgroup while the patch ran. "
    "Raise `asset.resources.memory_mb` if the asset has more memory.",
    Code.PATCH_KILLED: "The patch's process ended by a signal (not the timeout, not the OOM killer), "
    "e.g. `kill -9 $$`; `signal` says which.",
    Code.PATCH_INPUT_UNAVAILABLE: "An artifact or package of the patch could not be had: the URL did not "
    "answer or was too large, the content did not match its sha256, or the package version is not in "
    "the platform's repositories. The message says which; a retry helps only if a server was away.",
    Code.RERUN_INPUT_CHANGED: "A rerun (`patchtwin rerun`) fetched an artifact or package whose "
    "content differs from what the original run recorded (e.g. a URL now serves other bytes), or one "
    "that was not there: the message names it with both sha256. Nothing went into the twin. The run "
    "cannot be repeated exactly; a retry cannot help.",
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
    Code.SECRETS_PLACEHOLDERS: "The cloned namespace's Secrets were replaced by placeholders "
    "with the same keys; checks that need real secret values cannot be trusted (warning).",
    Code.RUN_DEADLINE_EXCEEDED: "The run did not finish before its deadline.",
    Code.RETRIES_EXHAUSTED: "A transient failure (broker, database, Docker) outlasted the "
    "retries.",
    Code.INTERNAL_ERROR: "An unexpected fault inside patchtwin; the message has the details.",
    Code.RUN_NOT_FOUND: "`patchtwin report`/`show`: no verdict is stored for that run id, either "
    "because no such run exists (check the id) or because it is still in progress (try again "
    "once its verdict is issued; the message says which stages are done). `patchtwin rerun`: no "
    "patch is recorded for that run id (no such run, or its patch was never applied).",
}


#: The codes for which trying the same request again may end differently: the cause was the
#: engine's or the moment's, not the request's or the patch's. Every other code is a retry
#: that repeats itself. docs/errors.md's table shows this as its "retry" column.
RETRY_MAY_HELP: frozenset[Code] = frozenset({
    Code.IMAGE_BUILD_FAILED,
    Code.TWIN_START_FAILED,
    Code.TWIN_NOT_READY,
    Code.TWIN_LOST,
    Code.PATCH_INTERRUPTED,
    Code.CHECK_ERROR,
    Code.RUN_DEADLINE_EXCEEDED,
    Code.RETRIES_EXHAUSTED,
    Code.RUN_NOT_FOUND,
    Code.INTERNAL_ERROR,
})
