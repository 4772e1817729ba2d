"""The inbox alone: a value becomes its event, through the stage's own step; poison is an
Undecodable naming the run when one can be read. (The message is a stand-in carrying a Kafka
record's fields; dead-lettering needs the broker and is tested in tests/integration.)"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faststream.kafka.message import KafkaMessage

from patchtwin.core.bus import Undecodable
from patchtwin.core.inbox import Inbox
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.events import TwinReleased


def message(value: bytes) -> KafkaMessage:
    return cast(KafkaMessage, SimpleNamespace(raw_message=SimpleNamespace(value=value, topic="t", key=None)))


def inbox() -> Inbox:
    return Inbox("janitor", broker=cast(Any, None), settings=Settings())


def test_a_value_becomes_its_event() -> None:
    event = TwinReleased(run_id="run-in", twins=[], reason="r")
    assert inbox().decode(message(event.model_dump_json().encode()), TwinReleased) == event


def test_the_stages_own_step_runs_between_json_and_validation() -> None:
    value = json.dumps({"twins": [], "reason": "r"}).encode()
    seen: list[bytes] = []

    def assign(data: dict[str, Any], raw: bytes) -> dict[str, Any]:
        seen.append(raw)
        return {**data, "run_id": "run-assigned"}

    assert inbox().decode(message(value), TwinReleased, assign).run_id == "run-assigned"
    assert seen == [value]


def test_an_invalid_event_is_undecodable_and_names_its_run() -> None:
    with pytest.raises(Undecodable) as bad:
        inbox().decode(message(json.dumps({"run_id": "run-bad", "twins": 3}).encode()), TwinReleased)
    assert (bad.value.code, bad.value.run_id) == (Code.INVALID_REQUEST, "run-bad")


def test_a_value_that_is_not_json_names_no_run() -> None:
    with pytest.raises(Undecodable) as bad:
        inbox().decode(message(b"\xff{"), TwinReleased)
    assert (bad.value.code, bad.value.run_id) == (Code.UNDECODABLE_MESSAGE, None)
