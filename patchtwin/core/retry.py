"""Which failures a retry can help, and retrying exactly those with capped, jittered backoff.

A failure of the broker, the database or the Docker engine that may pass (a connection
refused, a leader moving, a deadlock, a 5xx) is retried `retry_attempts` times, waiting from
`retry_initial_s` doubling to `retry_max_s`. Anything else — a bad request, a missing image, a
bug — fails at once: retrying it would only repeat it. When a stage's own work runs out of
retries the run ends in RunFailed (`RETRIES_EXHAUSTED` or the error's own code, with
`retryable: true`); when recording or publishing runs out, the message is not committed and
Kafka delivers it again later, so nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import stamina
from aiodocker.exceptions import DockerError
from aiokafka.errors import KafkaError

from patchtwin.exceptions import PatchtwinError
from patchtwin.settings import Settings

T = TypeVar("T")
log = logging.getLogger("patchtwin.retry")

#: Database failures that say "not now" rather than "never": the connection (class 08), the
#: server shutting down or starting (57P), too many connections, and lost races that
#: PostgreSQL itself asks to retry (serialization failure, deadlock).
_DATABASE_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.ConnectionDoesNotExistError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the same call may succeed if made again a little later."""
    if isinstance(exc, PatchtwinError):
        return exc.retryable
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in {
            "KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError", "RequestTimedOutError"}
    if isinstance(exc, DockerError):
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, _DATABASE_TRANSIENT):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError))


async def retrying(what: str, call: Callable[[], Awaitable[T]], settings: Settings) -> T:
    """`call()`, retried on transient failures as the settings say; the last failure is raised."""
    attempt_no = 0
    async for attempt in stamina.retry_context(
        on=is_transient,
        attempts=settings.retry_attempts,
        wait_initial=settings.retry_initial_s,
        wait_max=settings.retry_max_s,
        timeout=None,
    ):
        with attempt:
            attempt_no += 1
            if attempt_no > 1:
                log.warning("%s: attempt %d of %d", what, attempt_no, settings.retry_attempts)
            return await call()
    raise AssertionError("unreachable")  # stamina re-raises the last failure
