"""At least once in, exactly one verdict out: what Kafka delivers again is not done again."""

from __future__ import annotations

import json

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic, verdicts_of

PORT_ONLY = [{"type": "port", "port": 80}]


async def test_the_same_request_resent_with_a_new_event_id_is_the_same_run(
    pipeline: App, settings: Settings
) -> None:
    """A client that resends (new event id, new time, keys in another order) gets one run."""
    run_id = new_run_id("resent")
    request = nginx_request(run_id, "true", checks=PORT_ONLY)
    await publish(settings, "twin.requested", {**request, "event_id": "first-send"})
    [verdict] = await verdicts_of(settings, run_id, settle_s=0)

    resent = dict(reversed(list({**request, "event_id": "second-send",
                                 "occurred_at": "2026-01-01T00:00:00Z"}.items())))
    await publish(settings, "twin.requested", resent, key=run_id.encode())

    assert await verdicts_of(settings, run_id, settle_s=4) == [verdict]
    assert await read_topic(settings, "patchtwin.dlq", match=keyed(run_id), count=0, timeout_s=5,
                            settle_s=1) == []


async def test_a_stage_event_delivered_again_is_not_handled_again(pipeline: App, settings: Settings) -> None:
    """The executor gets the same TwinReady twice (as after a crash before its commit): the
    patch runs once, one PatchApplied is published, one verdict."""
    run_id = new_run_id("redelivered")
    await publish(settings, "twin.requested", nginx_request(run_id, "true", checks=PORT_ONLY))
    [verdict] = await verdicts_of(settings, run_id, settle_s=0)
    [ready] = await read_topic(settings, "twin.ready", match=keyed(run_id))

    await publish(settings, "twin.ready", ready.value, key=ready.key, headers=list(ready.headers))

    assert len(await read_topic(settings, "patch.applied", match=keyed(run_id), settle_s=4)) == 1
    assert await verdicts_of(settings, run_id, settle_s=0) == [verdict]
    assert pipeline.pool is not None
    attempts = await pipeline.pool.fetchval(
        "SELECT attempts FROM stage_runs WHERE stage = 'executor' AND run_id = $1", run_id)
    assert attempts == 1


async def test_a_verdict_published_again_is_an_identical_copy(pipeline: App, settings: Settings) -> None:
    """A crash between storing the verdict and marking it sent makes the relay publish it
    again: the copy has the same event id and the same content (the contract's rule)."""
    run_id = new_run_id("republished")
    await publish(settings, "twin.requested", nginx_request(run_id, "true", checks=PORT_ONLY))
    [first] = await read_topic(settings, "verdict.issued", match=keyed(run_id))
    assert pipeline.pool is not None
    await pipeline.pool.execute(
        "UPDATE outbox SET published_at = NULL, created_at = created_at - interval '1 hour' "
        "WHERE run_id = $1 AND topic = 'verdict.issued'", run_id)

    assert await pipeline.stages["analyzer"].relay_pending() >= 1

    records = await read_topic(settings, "verdict.issued", match=keyed(run_id), count=2, settle_s=1)
    assert [r.value for r in records] == [first.value, first.value]
    assert {dict(r.headers)["ce_id"] for r in records} == {json.loads(first.value)["event_id"].encode()}
