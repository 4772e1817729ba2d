"""Bad input, as a careless or hostile client sends it: every broken message gets a coded
error (an `error` verdict when a run id can be read, a dead-letter record otherwise), none is
lost, none blocks its partition, and a good request sent after them still gets its verdict."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from tests.clients import new_run_id, nginx_request, publish, read_topic, verdicts_of

TAG = uuid.uuid4().hex[:8]
MiB = 1024 * 1024


def _request(run_id: str, **changes: Any) -> dict[str, Any]:
    request = nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}])
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = request
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return request


_DELETE = object()


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _verdict_cases() -> dict[str, tuple[bytes, str]]:
    """name → (value, code of the error verdict): a run id can be read from each."""
    rid = lambda name: f"bad-{TAG}-{name}"  # noqa: E731
    return {name: (value, code) for name, value, code in [
        ("wrong-types", _dump(_request(rid("wrong-types"), patch__timeout_s="soon", repeats=[1])),
         "INVALID_REQUEST"),
        ("missing-asset", _dump(_request(rid("missing-asset"), asset=_DELETE)), "INVALID_REQUEST"),
        ("unknown-check", _dump(_request(rid("unknown-check"), checks=[{"type": "telepathy"}])),
         "INVALID_REQUEST"),
        ("negative-timeout", _dump(_request(rid("negative-timeout"), patch__timeout_s=-5)),
         "INVALID_REQUEST"),
        ("huge-script", _dump(_request(rid("huge-script"), patch__script="#" * (300 * 1024))),
         "INVALID_REQUEST"),
        ("schema-version", _dump(_request(rid("schema-version"), schema_version="2")), "INVALID_REQUEST"),
        ("empty-script", _dump(_request(rid("empty-script"), patch__script="")), "INVALID_REQUEST"),
        ("shell-in-service", _dump(_request(rid("shell-in-service"), asset__services=["nginx; rm -rf /"])),
         "INVALID_REQUEST"),
        ("nan-timeout", _request_text(rid("nan-timeout")).replace('"timeout_s": 60', '"timeout_s": NaN').encode(),
         "INVALID_REQUEST"),
        ("over-limit", _dump(_request(rid("over-limit"), padding="x" * (MiB + 1024))), "MESSAGE_TOO_LARGE"),
    ]}


def _request_text(run_id: str) -> str:
    return json.dumps(_request(run_id))


def _dead_letter_cases() -> dict[str, tuple[bytes, str]]:
    """name → (value, code in the dead-letter headers): no run id can be read from these."""
    return {
        "not-json": (b"hello, patchtwin", "UNDECODABLE_MESSAGE"),
        "binary-garbage": (bytes(range(256)) * 4, "UNDECODABLE_MESSAGE"),
        "empty": (b"", "UNDECODABLE_MESSAGE"),
        "truncated-json": (_request_text("cut-short")[:40].encode(), "UNDECODABLE_MESSAGE"),
        "json-array": (b"[1, 2, 3]", "INVALID_REQUEST"),
        "json-null": (b"null", "INVALID_REQUEST"),
        "bad-run-id": (_dump(_request("../../etc/passwd")), "INVALID_REQUEST"),
        "deep-nesting": (b"[" * 200_000 + b"]" * 200_000, "UNDECODABLE_MESSAGE"),
        "json-content-type-lies": (b"{not json at all", "UNDECODABLE_MESSAGE"),
        "over-limit-no-run-id": (b'{"padding": "' + b"x" * (MiB + 10) + b'"}', "MESSAGE_TOO_LARGE"),
    }


async def test_every_broken_request_gets_its_coded_error_and_a_good_one_still_passes(
    pipeline: App, settings: Settings
) -> None:
    verdict_cases, dead_cases = _verdict_cases(), _dead_letter_cases()
    assert len(verdict_cases) + len(dead_cases) + 1 >= 15  # the duplicate below is one more
    keys = {name: f"key-{TAG}-{name}".encode() for name in dead_cases}

    for value, _ in verdict_cases.values():
        await publish(settings, "twin.requested", value)
    for name, (value, _) in dead_cases.items():
        sent_headers = [("content-type", b"application/json")] if name == "json-content-type-lies" else None
        await publish(settings, "twin.requested", value, key=keys[name], headers=sent_headers)
    good = new_run_id("good-after-bad")
    await publish(settings, "twin.requested", nginx_request(good, "true", checks=[{"type": "port", "port": 80}]))

    records = await read_topic(settings, "verdict.issued", count=len(verdict_cases) + 1, settle_s=2,
                               match=lambda r: r.key.decode().startswith(f"bad-{TAG}-") or r.key == good.encode())
    verdicts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        verdicts[record.key.decode()].append(json.loads(record.value))
    for name, (_, code) in verdict_cases.items():
        [verdict] = verdicts[f"bad-{TAG}-{name}"]
        assert verdict["status"] == "error", name
        assert [i["code"] for i in verdict["issues"]] == [code], name
    assert "patch.timeout_s" in verdicts[f"bad-{TAG}-wrong-types"][0]["issues"][0]["message"]
    [good_verdict] = verdicts[good]
    assert good_verdict["status"] == "passed", good_verdict["summary"]

    dead = await read_topic(settings, "patchtwin.dlq", count=len(dead_cases), timeout_s=30,
                            match=lambda r: r.key in keys.values())
    by_key = {r.key: r for r in dead}
    for name, (value, code) in dead_cases.items():
        record = by_key[keys[name]]
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["patchtwin_error_code"] == code, name
        assert headers["patchtwin_error_reason"], name
        assert headers["patchtwin_source_topic"] == "twin.requested"
        if len(value) > settings.max_message_bytes:  # kept up to the limit, its size said
            assert (record.value, headers["patchtwin_truncated_from"]) == (
                value[: settings.max_message_bytes], str(len(value))), name
        else:
            assert (record.value or b"") == value, name  # nothing lost: the message as it came
    assert len(dead) == len(dead_cases)


async def test_a_run_id_reused_with_another_body_is_dead_lettered_and_the_first_run_stands(
    pipeline: App, settings: Settings
) -> None:
    run_id = new_run_id("dup")
    first = nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}])
    await publish(settings, "twin.requested", first)
    [verdict] = await verdicts_of(settings, run_id, settle_s=0)

    second = {**first, "patch": {**first["patch"], "script": "rm -rf /etc/nginx"}}
    await publish(settings, "twin.requested", second, key=run_id.encode())

    [record] = await read_topic(settings, "patchtwin.dlq", timeout_s=30, match=lambda r: r.key == run_id.encode())
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["patchtwin_error_code"] == "DUPLICATE_RUN_ID"
    assert run_id in headers["patchtwin_error_reason"]
    assert json.loads(record.value)["patch"]["script"] == "rm -rf /etc/nginx"  # nothing lost
    assert await verdicts_of(settings, run_id, settle_s=1) == [verdict]
