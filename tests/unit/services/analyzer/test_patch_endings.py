"""Each way a patch can end maps to exactly one code."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import PatchOutcome
from services.analyzer.logic import patch_issues


def ending(**fields: Any) -> PatchOutcome:
    return PatchOutcome.model_validate({"exit_code": 0, "duration_s": 1.0, **fields})


@pytest.mark.parametrize(("fields", "code"), [
    ({"exit_code": 3}, "PATCH_FAILED"),
    ({"exit_code": 137}, "PATCH_FAILED"),  # `exit 137` is an exit code, not a signal
    ({"exit_code": None, "signal": 9}, "PATCH_KILLED"),
    ({"exit_code": None, "signal": 9, "timed_out": True}, "PATCH_TIMEOUT"),
    ({"exit_code": None, "timed_out": True, "abandoned": True}, "PATCH_TIMEOUT"),
    ({"exit_code": 137, "oom_killed": True}, "PATCH_OOM"),
    ({"exit_code": None, "signal": 9, "oom_killed": True}, "PATCH_OOM"),
])
def test_bad_endings_map_to_one_issue(fields: dict[str, Any], code: str) -> None:
    issues, _ = patch_issues(ending(**fields))

    assert [i.code.value for i in issues] == [code]


def test_a_clean_exit_with_stderr_and_cut_output_only_warns() -> None:
    issues, warnings = patch_issues(ending(stderr="careful", truncated=True, stdout_bytes=9))

    assert issues == []
    assert [w.code.value for w in warnings] == ["PATCH_STDERR", "OUTPUT_TRUNCATED"]
