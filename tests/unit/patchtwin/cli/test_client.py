"""Building the request that repeats a run: the same asset, patch and checks under a new run id,
linked to the original, with every artifact pinned to the sha256 the original recorded."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from patchtwin.cli.client import rerun_id, rerun_request
from schemas import TwinRequested

TOOL = b"#!/bin/sh\necho tool\n"
CONF = b"key=value\n"


def original() -> dict[str, Any]:
    """A request as the provisioner passed it on (`context.request` of its TwinReady)."""
    body = {
        "run_id": "scan-web-01", "repeats": 3, "keep_twin": True,
        "asset": {"id": "web-01", "platform": {"os": "debian", "version": "12"}, "services": ["nginx"]},
        "patch": {"id": "P-1", "script": "nginx -t", "timeout_s": 30, "packages": {"hello": "2.10-3"},
                  "artifacts": [{"path": "/usr/local/bin/tool", "url": "http://files.example/tool"},
                                {"path": "/etc/app.conf", "content_base64": base64.b64encode(CONF).decode()}]},
        "checks": [{"type": "port", "port": 80}, {"type": "command", "run": "nginx -t"}],
    }
    return TwinRequested.model_validate(body).model_dump(mode="json")


INPUTS = {
    "artifacts": [{"path": "/usr/local/bin/tool", "sha256": hashlib.sha256(TOOL).hexdigest()},
                  {"path": "/etc/app.conf", "sha256": hashlib.sha256(CONF).hexdigest()}],
    "packages": [{"path": "/opt/patchtwin/debs/hello_2.10-3_amd64.deb", "sha256": "ab" * 32}],
}


def test_a_rerun_has_the_same_patch_asset_and_checks_under_a_new_run_id_linked_to_the_original() -> None:
    first = original()

    rerun = TwinRequested.model_validate(rerun_request(first, INPUTS))

    assert rerun.run_id != "scan-web-01" and rerun.run_id.startswith("scan-web-01.rerun-")
    assert rerun.rerun_of == "scan-web-01"
    assert rerun.event_id != first["event_id"]
    assert rerun.asset.model_dump(mode="json") == first["asset"]
    assert [c.model_dump(mode="json") for c in rerun.checks] == first["checks"]
    assert (rerun.repeats, rerun.keep_twin, rerun.ttl_s) == (3, True, first["ttl_s"])
    patch = rerun.patch.model_dump(mode="json")
    assert {k: v for k, v in patch.items() if k != "artifacts"} == \
        {k: v for k, v in first["patch"].items() if k != "artifacts"}


def test_every_artifact_is_pinned_to_the_sha256_the_original_run_recorded() -> None:
    rerun = rerun_request(original(), INPUTS)

    artifacts = rerun["patch"]["artifacts"]
    assert [(a["path"], a.get("url"), a["sha256"]) for a in artifacts] == [
        ("/usr/local/bin/tool", "http://files.example/tool", hashlib.sha256(TOOL).hexdigest()),
        ("/etc/app.conf", None, hashlib.sha256(CONF).hexdigest()),
    ]
    assert artifacts[1]["content_base64"] == base64.b64encode(CONF).decode()


def test_a_rerun_of_a_rerun_links_to_the_run_it_repeats() -> None:
    second = rerun_request(original(), INPUTS, run_id="second")
    second_as_stored = TwinRequested.model_validate(second).model_dump(mode="json")

    third = rerun_request(second_as_stored, INPUTS)

    assert third["rerun_of"] == "second"
    assert third["run_id"].startswith("second.rerun-")


def test_a_rerun_id_stays_a_valid_run_id_for_the_longest_original() -> None:
    longest = "r" * 128

    assert len(rerun_id(longest)) <= 128
    TwinRequested.model_validate({**original(), "run_id": rerun_id(longest)})


def test_a_stored_request_that_no_longer_validates_is_refused_before_anything_is_sent() -> None:
    broken = original()
    broken["patch"] = {**broken["patch"], "script": "", "packages": {}, "artifacts": []}

    with pytest.raises(ValidationError):
        rerun_request(broken, {})
