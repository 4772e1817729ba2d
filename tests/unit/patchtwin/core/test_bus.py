"""How incoming bytes become an event, or a coded reason why they cannot."""

from __future__ import annotations

import json

import pytest

from patchtwin.core.bus import Undecodable, cloudevent_headers, parse_value, validate_event
from schemas import Code, TwinRequested
from tests.contract import TWIN_REQUESTED


def test_contract_request_parses_and_validates() -> None:
    data = parse_value(json.dumps(TWIN_REQUESTED).encode(), max_bytes=1 << 20)
    assert validate_event(data, TwinRequested).patch.id == "P-1001"


@pytest.mark.parametrize(("value", "code"), [
    (b"", Code.UNDECODABLE_MESSAGE),
    (None, Code.UNDECODABLE_MESSAGE),
    (b"not json", Code.UNDECODABLE_MESSAGE),
    (b"\xff\xfe\x00garbage", Code.UNDECODABLE_MESSAGE),
    (b"[" * 100_000 + b"]" * 100_000, Code.UNDECODABLE_MESSAGE),  # deeper than the parser goes
])
def test_unreadable_values_are_undecodable_without_run_id(value: bytes | None, code: Code) -> None:
    with pytest.raises(Undecodable) as caught:
        parse_value(value, max_bytes=1 << 20)
    assert (caught.value.code, caught.value.run_id) == (code, None)


def test_oversized_value_is_refused_but_keeps_its_run_id() -> None:
    big = dict(TWIN_REQUESTED, patch={"id": "p", "script": "x" * 2048})
    with pytest.raises(Undecodable) as caught:
        parse_value(json.dumps(big).encode(), max_bytes=1024)
    assert caught.value.code is Code.MESSAGE_TOO_LARGE
    assert caught.value.run_id == TWIN_REQUESTED["run_id"]
    assert "over the limit of 1024 bytes" in caught.value.message


def test_invalid_request_names_each_bad_field_and_keeps_run_id() -> None:
    bad = dict(TWIN_REQUESTED, patch={"id": "p", "script": "true", "timeout_s": -1})
    with pytest.raises(Undecodable) as caught:
        validate_event(bad, TwinRequested)
    assert caught.value.code is Code.INVALID_REQUEST
    assert caught.value.run_id == TWIN_REQUESTED["run_id"]
    assert [e["loc"] for e in caught.value.errors] == ["patch.timeout_s"]


def test_invalid_run_id_is_not_trusted_as_a_key() -> None:
    bad = dict(TWIN_REQUESTED, run_id="has spaces and / slashes")
    with pytest.raises(Undecodable) as caught:
        validate_event(bad, TwinRequested)
    assert caught.value.run_id is None


def test_unknown_check_type_is_invalid() -> None:
    bad = dict(TWIN_REQUESTED, checks=[{"type": "telepathy"}])
    with pytest.raises(Undecodable) as caught:
        validate_event(bad, TwinRequested)
    assert "checks.0" in caught.value.message


def test_cloudevent_headers_follow_the_kafka_binding() -> None:
    headers = cloudevent_headers(event_id="e-1", ce_type="io.patchtwin.twin.ready.v1",
                                 source="patchtwin/provisioner", run_id="r-1")
    assert headers["ce_specversion"] == "1.0"
    assert (headers["ce_id"], headers["ce_subject"]) == ("e-1", "r-1")
    assert headers["content-type"] == "application/json"
