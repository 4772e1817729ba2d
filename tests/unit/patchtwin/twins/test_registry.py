"""Runtimes by name: the provisioner picks one per request, later stages find the twin's own."""

from __future__ import annotations

import pytest

from patchtwin.exceptions import RuntimeUnavailable
from patchtwin.twins import CappedBuffer, DockerRuntime, Runtimes, TwinRuntime
from patchtwin.twins.runtime import CUT_MARKER
from schemas import Code
from schemas.events import TwinRef


def test_docker_runtime_satisfies_the_twin_runtime_protocol() -> None:
    assert isinstance(DockerRuntime(), TwinRuntime)


def test_runtimes_are_found_by_name_and_by_the_twin_they_made() -> None:
    docker = DockerRuntime()
    runtimes = Runtimes([docker])

    assert runtimes.get("docker") is docker
    assert runtimes.get(None) is docker
    assert runtimes.for_twin(TwinRef(id="c1", name="patchtwin-x", image="i")) is docker
    assert runtimes.all() == [docker]
    assert runtimes.names() == ["docker"]


def test_a_runtime_this_process_lacks_is_a_coded_error_naming_what_it_has() -> None:
    runtimes = Runtimes([DockerRuntime()])

    with pytest.raises(RuntimeUnavailable) as caught:
        runtimes.get("nomad")

    assert caught.value.code is Code.RUNTIME_UNAVAILABLE
    assert "'nomad'" in caught.value.message and "docker" in caught.value.message


def test_one_runtime_is_wrapped_as_a_set_and_a_set_is_kept() -> None:
    docker = DockerRuntime()
    runtimes = Runtimes([docker])

    assert Runtimes.wrap(runtimes) is runtimes
    assert Runtimes.wrap(docker).all() == [docker]


def test_capped_buffer_keeps_head_and_tail_marks_the_cut_and_counts_everything() -> None:
    buffer = CappedBuffer(6)
    for chunk in (b"abc", b"defg", b"hij"):
        buffer.add(chunk)

    assert buffer.data() == b"abc" + CUT_MARKER + b"hij"
    assert buffer.total == 10
    assert buffer.cut


def test_capped_buffer_under_its_cap_keeps_everything_unmarked() -> None:
    buffer = CappedBuffer(6)
    for chunk in (b"ab", b"cdef"):
        buffer.add(chunk)

    assert buffer.data() == b"abcdef"
    assert not buffer.cut
