"""A rerun's inputs against the original run's record: byte for byte the same, or refused with
a message naming each difference."""

from __future__ import annotations

import pytest

from patchtwin.exceptions import RerunInputChanged
from schemas.codes import RETRY_MAY_HELP, Code
from services.executor.inputs import input_differences, verify_rerun

RECORDED = {
    "artifacts": [{"path": "/usr/local/bin/tool", "sha256": "a" * 64}, {"path": "/etc/app.conf", "sha256": "b" * 64}],
    "packages": [{"path": "/opt/patchtwin/debs/hello_2.10-3_amd64.deb", "sha256": "c" * 64}],
}


def test_the_same_bytes_are_no_difference() -> None:
    assert input_differences(RECORDED, {k: list(reversed(v)) for k, v in RECORDED.items()}) == []
    verify_rerun(RECORDED, RECORDED, "run-1")


def test_an_artifact_with_other_content_is_named_with_both_hashes() -> None:
    fetched = {**RECORDED, "artifacts": [{"path": "/usr/local/bin/tool", "sha256": "d" * 64},
                                         {"path": "/etc/app.conf", "sha256": "b" * 64}]}

    assert input_differences(RECORDED, fetched) == [
        f"/usr/local/bin/tool: sha256 is now {'d' * 64}, recorded {'a' * 64}"]


def test_a_deb_missing_or_new_is_a_difference() -> None:
    fetched = {**RECORDED, "packages": [{"path": "/opt/patchtwin/debs/hello_2.10-4_amd64.deb", "sha256": "c" * 64}]}

    assert input_differences(RECORDED, fetched) == [
        f"/opt/patchtwin/debs/hello_2.10-3_amd64.deb: recorded with sha256 {'c' * 64}, not fetched now",
        f"/opt/patchtwin/debs/hello_2.10-4_amd64.deb: fetched now (sha256 {'c' * 64}), not in the record",
    ]


def test_a_changed_input_refuses_the_rerun_with_a_code_no_retry_can_help() -> None:
    fetched = {**RECORDED, "artifacts": RECORDED["artifacts"][:1]}

    with pytest.raises(RerunInputChanged) as refused:
        verify_rerun(RECORDED, fetched, "run-1")

    assert refused.value.code is Code.RERUN_INPUT_CHANGED
    assert Code.RERUN_INPUT_CHANGED not in RETRY_MAY_HELP and not refused.value.retryable
    assert "run run-1" in refused.value.message and "/etc/app.conf" in refused.value.message
