"""Which failures are retried, and that retrying stops at the cap and passes the cause on."""

from __future__ import annotations

import asyncpg
import pytest
from aiodocker.exceptions import DockerError
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

from patchtwin.core.retry import is_transient, retrying
from patchtwin.exceptions import ImageUnavailable, InvalidRequest, TransientError, TwinLost
from patchtwin.settings import Settings

FAST = Settings(retry_attempts=3, retry_initial_s=0.001, retry_max_s=0.002)


@pytest.mark.parametrize("exc", [
    TransientError("docker busy"),
    KafkaConnectionError("broker away"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.DeadlockDetectedError("deadlock"),
    DockerError(503, "busy"),
    ConnectionRefusedError(),
    TimeoutError(),
])
def test_failures_that_may_pass_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    InvalidRequest("bad"),
    ImageUnavailable("no image"),
    TwinLost("gone"),
    DockerError(404, "no such container"),
    asyncpg.UniqueViolationError("duplicate key"),
    ValueError("a bug"),
    KeyError("a bug"),
])
def test_failures_that_repeat_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_a_kafka_error_marked_retriable_by_aiokafka_is_transient() -> None:
    assert is_transient(UnknownTopicOrPartitionError())  # aiokafka: retriable = True


async def test_retrying_returns_once_a_transient_failure_passes() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise KafkaConnectionError("broker away")
        return "sent"

    assert await retrying("publish", flaky, FAST) == "sent"
    assert calls == 3


async def test_retrying_gives_up_after_the_cap_with_the_last_failure() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.CannotConnectNowError(f"still down ({calls})")

    with pytest.raises(asyncpg.CannotConnectNowError, match=r"still down \(3\)"):
        await retrying("record", down, FAST)
    assert calls == FAST.retry_attempts


async def test_retrying_never_repeats_a_failure_a_retry_cannot_help() -> None:
    calls = 0

    async def invalid() -> None:
        nonlocal calls
        calls += 1
        raise InvalidRequest("bad request")

    with pytest.raises(InvalidRequest):
        await retrying("provision", invalid, FAST)
    assert calls == 1
