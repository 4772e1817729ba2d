"""Errors patchtwin raises, each with a verdict code and whether a retry can help.

    PatchtwinError                 (code, retryable)
    ├── InvalidRequest             bad input: the request, a check spec — never retried
    ├── ImageUnavailable           no image for the platform — never retried
    │   ├── PackageVersionUnavailable  a pinned version is not in the repositories
    │   └── ImageBuildFailed       the asset image's build failed otherwise
    ├── TwinError                  the twin could not be made or used
    │   ├── TwinStartFailed
    │   ├── TwinNotReady
    │   ├── TwinLost
    │   ├── RuntimeUnavailable     the asked-for runtime is not configured
    │   └── CloneFailed            the source namespace could not be cloned
    ├── PatchInputUnavailable      an artifact or package of the patch could not be had
    │   └── RerunInputChanged      a rerun's input differs from the original run's record
    └── TransientError             broker, database or Docker briefly away — retried
"""

from __future__ import annotations

from typing import Any

from schemas.codes import Code


class PatchtwinError(Exception):
    code: Code = Code.INTERNAL_ERROR
    retryable: bool = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(PatchtwinError):
    code = Code.INVALID_REQUEST


class ImageUnavailable(PatchtwinError):
    code = Code.IMAGE_UNAVAILABLE


class PackageVersionUnavailable(ImageUnavailable):
    code = Code.PACKAGE_VERSION_UNAVAILABLE


class ImageBuildFailed(ImageUnavailable):
    code = Code.IMAGE_BUILD_FAILED


class TwinError(PatchtwinError):
    code = Code.TWIN_START_FAILED


class TwinStartFailed(TwinError):
    code = Code.TWIN_START_FAILED


class TwinNotReady(TwinError):
    code = Code.TWIN_NOT_READY


class TwinLost(TwinError):
    code = Code.TWIN_LOST


class RuntimeUnavailable(TwinError):
    code = Code.RUNTIME_UNAVAILABLE


class CloneFailed(TwinError):
    code = Code.CLONE_FAILED


class PatchInputUnavailable(PatchtwinError):
    """An artifact or a package of the patch could not be had (see the message)."""

    code = Code.PATCH_INPUT_UNAVAILABLE


class RerunInputChanged(PatchInputUnavailable):
    """A rerun fetched other bytes than the run it repeats recorded: it cannot be exact."""

    code = Code.RERUN_INPUT_CHANGED


class TransientError(PatchtwinError):
    code = Code.RETRIES_EXHAUSTED
    retryable = True
