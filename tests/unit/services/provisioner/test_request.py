"""The request's own rules, now the provisioner's: assigned ids, what makes two requests one run,
the run's deadline."""

from __future__ import annotations

import json

from patchtwin.core.ledger import fingerprint
from patchtwin.settings import Settings
from schemas import TwinRequested
from services.provisioner.request import request_key, run_deadline_s, with_assigned_ids
from tests.clients import nginx_request


def test_a_request_without_ids_gets_ones_derived_from_its_bytes() -> None:
    value = json.dumps(nginx_request("", "true")).encode()
    first = with_assigned_ids(json.loads(value), value)
    assert first["run_id"].startswith("run-") and first["event_id"].startswith("req-")
    assert with_assigned_ids(json.loads(value), value) == first  # a redelivery is the same run
    assert with_assigned_ids(json.loads(value), value + b" ")["run_id"] != first["run_id"]


def test_ids_a_request_has_are_kept() -> None:
    data = {**nginx_request("run-mine", "true"), "event_id": "evt-mine"}
    assert with_assigned_ids(data, b"x") == data


def test_the_same_body_with_another_event_id_and_time_is_the_same_run_another_body_is_not() -> None:
    request = TwinRequested.model_validate(nginx_request("run-key", "true"))
    resent = request.model_copy(update={"event_id": "other", "occurred_at": request.occurred_at.replace(year=2001)})
    changed = TwinRequested.model_validate(nginx_request("run-key", "false"))
    assert fingerprint(request_key(resent)) == fingerprint(request_key(request))
    assert fingerprint(request_key(changed)) != fingerprint(request_key(request))


def test_the_deadline_is_readiness_plus_the_patchs_timeout_plus_the_margin() -> None:
    request = TwinRequested.model_validate(nginx_request("run-deadline", "true", timeout_s=20))
    settings = Settings(readiness_timeout_s=30, run_deadline_margin_s=600)
    assert run_deadline_s(request, settings) == 650
