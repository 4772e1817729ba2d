"""The checked-in JSON Schemas are the models' schemas, and the contract's examples satisfy them."""

from __future__ import annotations

import json

import jsonschema
import pytest

from schemas.events import EVENTS, TwinRequested, VerdictIssued
from schemas.generate import JSON_DIR, render
from tests.contract import TWIN_REQUESTED, VERDICT_CHECK_FIELDS, VERDICT_FIELDS


@pytest.mark.parametrize("name", sorted(render()))
def test_checked_in_schema_matches_the_model(name: str) -> None:
    checked_in = (JSON_DIR / name).read_text() if (JSON_DIR / name).exists() else None
    assert checked_in == render()[name], f"{name} drifted: run `python -m schemas.generate`"


def test_every_topic_has_exactly_one_event_and_schema() -> None:
    topics = [event.topic for event in EVENTS]
    assert len(topics) == len(set(topics))
    assert {p.name for p in JSON_DIR.glob("*.schema.json")} == set(render())


def test_contract_request_validates_against_the_checked_in_schema() -> None:
    schema = json.loads((JSON_DIR / "twin.requested.schema.json").read_text())
    jsonschema.validate(TWIN_REQUESTED, schema)


def test_contract_request_is_accepted_with_seven_checks() -> None:
    request = TwinRequested.model_validate(TWIN_REQUESTED)
    assert request.run_id == TWIN_REQUESTED["run_id"]
    assert [c.type for c in request.checks] == [c["type"] for c in TWIN_REQUESTED["checks"]]
    assert all(c.critical for c in request.checks)


def test_request_without_run_id_gets_one_assigned() -> None:
    body = {k: v for k, v in TWIN_REQUESTED.items() if k != "run_id"}
    assert TwinRequested.model_validate(body).run_id


def test_verdict_carries_every_field_consumers_rely_on() -> None:
    properties = VerdictIssued.model_json_schema()["properties"]
    assert set(properties) >= VERDICT_FIELDS
    check_schema = VerdictIssued.model_json_schema()["$defs"]["CheckVerdict"]["properties"]
    assert set(check_schema) >= VERDICT_CHECK_FIELDS


def test_events_carry_the_common_envelope() -> None:
    for event in EVENTS:
        fields = event.model_fields
        assert {"event_id", "run_id", "schema_version", "occurred_at"} <= set(fields), event
        assert event.ce_type() == f"io.patchtwin.{event.topic.value}.v1"
