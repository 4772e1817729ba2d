"""How an ending becomes the event's account of it."""

from __future__ import annotations

from patchtwin.settings import Settings
from patchtwin.twins import ExecResult
from patchtwin.twins.runtime import CUT_MARKER
from services.executor.logic import excerpt, outcome_of


def test_excerpt_keeps_short_output_whole() -> None:
    assert excerpt(b"hello", 10) == b"hello"


def test_excerpt_keeps_head_and_tail_of_long_output() -> None:
    assert excerpt(b"0123456789", 4) == b"01" + CUT_MARKER + b"89"


def test_outcome_carries_every_field_of_the_ending() -> None:
    result = ExecResult(exit_code=None, stdout=b"x" * 100, stderr=b"", stdout_bytes=5000, stderr_bytes=0,
                        duration_s=2.01234, timed_out=True, signal=9, oom_killed=False,
                        observed_by="supervisor", truncated=True)

    outcome = outcome_of(result, Settings(patch_output_event_bytes=10), step="script", user="nobody")

    assert (outcome.exit_code, outcome.signal, outcome.timed_out, outcome.truncated) == (None, 9, True, True)
    assert outcome.duration_s == 2.012
    assert outcome.stdout == ("x" * 5 + CUT_MARKER.decode() + "x" * 5)
    assert (outcome.stdout_bytes, outcome.observed_by, outcome.user) == (5000, "supervisor", "nobody")
