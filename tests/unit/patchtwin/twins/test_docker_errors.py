"""Engine errors become patchtwin's in one place: transient, gone, or the caller's failure."""

from __future__ import annotations

import pytest
from aiodocker.exceptions import DockerError, DockerStreamError

from patchtwin.exceptions import ImageUnavailable, TransientError, TwinLost, TwinStartFailed
from patchtwin.twins.docker_errors import engine_error, engine_errors


@pytest.mark.parametrize("status", [500, 503, 429, 900])
def test_a_busy_or_unreachable_engine_is_transient(status: int) -> None:
    mapped = engine_error(DockerError(status, "busy"), "exec", gone=TwinLost, failure=TwinStartFailed)
    assert isinstance(mapped, TransientError) and mapped.retryable
    assert mapped.message == "docker: exec: busy"


@pytest.mark.parametrize("status", [404, 409])
def test_a_missing_or_stopped_twin_is_gone(status: int) -> None:
    assert type(engine_error(DockerError(status, "no such container"), "exec", gone=TwinLost)) is TwinLost


def test_otherwise_the_callers_failure_or_the_engines_own_error() -> None:
    refused = DockerError(404, "no such image")
    assert type(engine_error(refused, "create", failure=TwinStartFailed)) is TwinStartFailed
    unexpected = DockerError(400, "bad parameter")
    assert engine_error(unexpected, "create") is unexpected
    # a stream's error (status 0: the HTTP answer was fine) is the failure, never transient
    assert type(engine_error(DockerStreamError("pull access denied"), "pull", failure=ImageUnavailable)) \
        is ImageUnavailable


def test_the_block_form_chains_the_engines_error() -> None:
    cause = DockerError(503, "busy")
    with pytest.raises(TransientError) as raised, engine_errors("list twins"):
        raise cause
    assert raised.value.__cause__ is cause
    with pytest.raises(DockerError) as unmapped, engine_errors("list twins"):
        raise DockerError(400, "bad filter")
    assert unmapped.value.status == 400
