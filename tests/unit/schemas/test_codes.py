"""Every code says what it means and whether a retry may help, consistently with the errors
that carry it."""

from __future__ import annotations

from patchtwin.exceptions import ImageUnavailable, InvalidRequest, TransientError, TwinLost
from schemas.codes import MEANING, RETRY_MAY_HELP, Code


def test_every_code_has_a_meaning() -> None:
    assert set(MEANING) == set(Code)
    assert all(MEANING[code].strip() for code in Code)


def test_bad_input_codes_are_never_worth_a_retry() -> None:
    request_codes = {Code.INVALID_REQUEST, Code.UNDECODABLE_MESSAGE, Code.MESSAGE_TOO_LARGE,
                     Code.DUPLICATE_RUN_ID}
    assert not request_codes & RETRY_MAY_HELP


def test_errors_marked_retryable_carry_codes_a_retry_may_help() -> None:
    assert TransientError.retryable and TransientError.code in RETRY_MAY_HELP
    for error in (InvalidRequest, ImageUnavailable):
        assert not error.retryable and error.code not in RETRY_MAY_HELP
    assert TwinLost.code in RETRY_MAY_HELP  # a new twin may well stay
