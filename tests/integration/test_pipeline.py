"""The end-to-end pipeline as a scanner and a ticketing system see it."""

from __future__ import annotations

import json

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from schemas import TwinRequested
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic, verdicts_of

GOOD = "#!/bin/sh\nset -e\nsed -i 's/worker_connections 768/worker_connections 1024/' " \
       "/etc/nginx/nginx.conf\nnginx -t\nservice nginx reload\n"
BREAKING = "#!/bin/sh\nset -e\nsed -i 's/listen 80 default_server/listen 8080 default_server/' " \
           "/etc/nginx/sites-enabled/default\nservice nginx restart\n"


async def _twins_left(runtime: DockerRuntime, settings: Settings, run_id: str) -> list[str]:
    # the verdict comes before the release: wait for TwinReleased, then look
    await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=60)
    return [c["name"] for c in await runtime.list_ours(run_id)]


async def test_contract_request_gets_exactly_one_verdict_and_leaves_no_twin(
    pipeline: App, settings: Settings, runtime: DockerRuntime
) -> None:
    run_id = new_run_id("contract")
    request = nginx_request(run_id, GOOD)
    await publish(settings, "twin.requested", request)

    verdicts = await verdicts_of(settings, run_id)

    assert len(verdicts) == 1
    verdict = verdicts[0]
    assert verdict["status"] == "passed", verdict["summary"]
    assert 0 < verdict["confidence"] <= 100
    assert {c["classification"] for c in verdict["checks"]} == {"stable"}
    assert len(verdict["checks"]) == 7
    # each check says when it was ready after the patch: how many attempts the first repeat
    # took, when it first passed, and what every repeat saw
    repeats = TwinRequested.model_validate(request).repeats
    for check in verdict["checks"]:
        assert check["attempts"] >= 1, check
        assert check["observations"] == ["passed"] * repeats, check
        assert isinstance(check["time_to_pass_s"], int | float) and check["time_to_pass_s"] >= 0, check
    assert await _twins_left(runtime, settings, run_id) == []


async def test_verdict_message_has_key_and_cloudevents_headers(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("headers")
    await publish(settings, "twin.requested", nginx_request(run_id, "true", checks=[]))

    [record] = await read_topic(settings, "verdict.issued", match=keyed(run_id), settle_s=1)

    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "io.patchtwin.verdict.issued.v1"
    assert headers["ce_source"] == "patchtwin/analyzer"
    assert headers["ce_subject"] == run_id
    assert headers["content-type"] == "application/json"
    assert headers["ce_id"] == json.loads(record.value)["event_id"]
    assert headers["ce_time"]


async def test_breaking_patch_fails_naming_the_regressed_check(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("breaking")
    await publish(settings, "twin.requested", nginx_request(run_id, BREAKING))

    [verdict] = await verdicts_of(settings, run_id)

    assert verdict["status"] == "failed"
    regressed = [i for i in verdict["issues"] if i["code"] == "CHECK_REGRESSED"]
    assert [i["check"] for i in regressed] == ["http GET http://127.0.0.1/"]
    http = next(c for c in verdict["checks"] if c["type"] == "http")
    assert (http["baseline"], http["after"], http["classification"]) == ("passed", "failed",
                                                                         "regression")


async def test_patch_exiting_non_zero_fails_with_patch_failed(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("exit3")
    await publish(settings, "twin.requested",
                  nginx_request(run_id, "echo going wrong >&2; exit 3", checks=[]))

    [verdict] = await verdicts_of(settings, run_id)

    assert verdict["status"] == "failed"
    assert verdict["patch"]["exit_code"] == 3
    assert [i["code"] for i in verdict["issues"]] == ["PATCH_FAILED"]
    assert "going wrong" in verdict["issues"][0]["message"]


async def test_same_request_twice_makes_one_run_and_one_verdict(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("twice")
    request = nginx_request(run_id, GOOD, checks=[{"type": "port", "port": 80}])
    await publish(settings, "twin.requested", request)
    await publish(settings, "twin.requested", request)

    verdicts = await verdicts_of(settings, run_id, settle_s=8)
    ready = await read_topic(settings, "twin.ready", match=keyed(run_id), settle_s=1)

    assert len(verdicts) == 1
    assert len(ready) == 1


async def test_unknown_image_is_an_error_verdict(pipeline: App, settings: Settings) -> None:
    run_id = new_run_id("noimage")
    request = nginx_request(run_id, "true", checks=[])
    request["asset"]["image"] = "patchtwin/no-such-image:1"
    await publish(settings, "twin.requested", request)

    [verdict] = await verdicts_of(settings, run_id)

    assert verdict["status"] == "error"
    assert [i["code"] for i in verdict["issues"]] == ["IMAGE_UNAVAILABLE"]
