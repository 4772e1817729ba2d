"""The one place where the Docker engine's errors become patchtwin's.

An engine error is transient when the engine itself failed or was busy (5xx, 429, or
aiodocker's 900: no connection); a 404 or 409 on a twin means it is gone or not running.
Everything else is the caller's `failure` (the coded error of what it was doing), or, when
it names none, the engine's error itself: an unexpected answer is a bug to see, not a code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiodocker.exceptions import DockerError

from patchtwin.exceptions import PatchtwinError, TransientError


def is_transient(exc: DockerError) -> bool:
    return exc.status >= 500 or exc.status == 429


def engine_error(
    exc: DockerError, doing: str, *, gone: type[PatchtwinError] | None = None,
    failure: type[PatchtwinError] | None = None,
) -> Exception:
    """The patchtwin error for an engine error met while `doing` something."""
    message = f"docker: {doing}: {exc.message}"
    if is_transient(exc):
        return TransientError(message)
    if gone is not None and exc.status in (404, 409):
        return gone(message)
    if failure is not None:
        return failure(message)
    return exc


@contextmanager
def engine_errors(
    doing: str, *, gone: type[PatchtwinError] | None = None, failure: type[PatchtwinError] | None = None,
) -> Iterator[None]:
    """Raises `engine_error` for any engine error in the block."""
    try:
        yield
    except DockerError as exc:
        mapped = engine_error(exc, doing, gone=gone, failure=failure)
        if mapped is exc:
            raise
        raise mapped from exc
