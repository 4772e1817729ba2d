"""The checked-in AsyncAPI document is what FastStream generates from the services' routers, and
it names every topic of the contract with its event's payload schema."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest

from patchtwin.cli.asyncapi import ASYNCAPI_FILE, SERVER, build, render
from schemas.events import EVENTS
from schemas.topics import Topic


@pytest.fixture(scope="module")
def text() -> str:
    """The document generated now, in memory (generating takes a second: once per module)."""
    return render()


@pytest.fixture(scope="module")
def document(text: str) -> dict[str, Any]:
    return dict(json.loads(text))


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local `$ref` points to, following references to references."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    return resolve(document, node["$ref"]) if isinstance(node, dict) and "$ref" in node else node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_checked_in_document_matches_the_code(text: str) -> None:
    checked_in = ASYNCAPI_FILE.read_text() if ASYNCAPI_FILE.exists() else None
    assert checked_in == text, "schemas/asyncapi.json drifted: run `python -m patchtwin.cli.asyncapi`"


def test_document_does_not_depend_on_this_machines_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHTWIN_TOPIC_PREFIX", "other-")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "somewhere:1234")
    monkeypatch.setenv("PATCHTWIN_STAGE_WORKERS", "2")
    document = build()
    assert json.dumps(document, indent=2, sort_keys=True) + "\n" == ASYNCAPI_FILE.read_text()
    assert [server["host"] for server in document["servers"].values()] == [SERVER]


@pytest.mark.parametrize("topic", list(Topic))
def test_every_topic_is_a_channel_with_a_payload_schema(document: dict[str, Any], topic: Topic) -> None:
    channels = [c for c in document["channels"].values() if c["address"] == topic.value]
    assert channels, f"{topic.value} is not in the document"
    for channel in channels:
        for ref in channel["messages"].values():
            message = resolve(document, ref["$ref"])
            payload = resolve(document, message["payload"]["$ref"])
            assert payload.get("type") in {"object", "string"}, payload
            assert "properties" in message["headers"]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.topic.value)
def test_an_events_payload_is_its_models_schema(document: dict[str, Any], event: Any) -> None:
    operations = [o for o in document["operations"].values()
                  if resolve(document, o["channel"]["$ref"])["address"] == event.topic.value]
    assert "send" in {o["action"] for o in operations}, f"nobody publishes {event.topic.value}"
    for operation in operations:
        for ref in operation["messages"]:
            payload = resolve(document, resolve(document, ref["$ref"])["payload"]["$ref"])
            assert payload["title"] == event.__name__
            assert set(payload["properties"]) == set(event.model_json_schema()["properties"])


def test_each_service_subscribes_to_what_it_consumes(document: dict[str, Any]) -> None:
    received = {
        resolve(document, o["channel"]["$ref"])["address"]
        for o in document["operations"].values()
        if o["action"] == "receive"
    }
    assert received == {"twin.requested", "twin.ready", "patch.applied", "checks.completed", "run.failed",
                        "verdict.issued"}


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    found = refs(document)
    assert found
    for ref in found:
        resolve(document, ref)
    assert "EmptyPayload" not in document["components"]["schemas"]


def test_document_is_json_with_sorted_keys(text: str) -> None:
    assert json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text
