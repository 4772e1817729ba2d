"""Writes the AsyncAPI 3.0 document of every topic to schemas/asyncapi.json (`python -m patchtwin.cli.asyncapi`,
which also writes the events' JSON Schemas).

FastStream's own generator reads the real wiring: the five services' routers on one broker, as
`patchtwin up` assembles them (`patchtwin.cli.app.include_routers`). Two things FastStream cannot
see are added from the contract: a subscriber decodes the raw value itself (so poison can be
dead-lettered, `Stage.subscription`), so its message's payload is the event of its topic rather
than the handler's parameters; and the CloudEvents headers every event carries (docs/contract.md),
or the error headers of a dead letter. The document is deterministic: default topic names (no
prefix), the compose deployment's broker address, sorted keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import schemas
from schemas import generate
from schemas.events import EVENTS, SCHEMA_VERSION
from schemas.topics import Topic

ASYNCAPI_FILE = Path(schemas.__file__).parent / "asyncapi.json"
#: The broker as compose.yaml names it; elsewhere PATCHTWIN_KAFKA_BOOTSTRAP_SERVERS says.
SERVER = "kafka:9092"

_CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents Kafka binding, binary mode (docs/contract.md). "
    "A client's request may come without them.",
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "the event_id"},
        "ce_type": {"type": "string", "pattern": rf"^io\.patchtwin\.[a-z.]+\.v{SCHEMA_VERSION}$"},
        "ce_source": {"type": "string", "description": "the publishing service, e.g. patchtwin/analyzer"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "the run_id"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context of the run"},
    },
}
_DLQ_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Why the message was dead-lettered and where it came from.",
    "properties": {
        "patchtwin_error_code": {"type": "string", "description": "a code of the error table, docs/errors.md"},
        "patchtwin_error_reason": {"type": "string"},
        "patchtwin_source_topic": {"type": "string"},
        "patchtwin_source_partition": {"type": "string"},
        "patchtwin_source_offset": {"type": "string"},
        "patchtwin_truncated_from": {"type": "string", "description": "the original size, when cut"},
        "ce_source": {"type": "string", "description": "the stage that dead-lettered it"},
    },
}


def build() -> dict[str, Any]:
    """The AsyncAPI document as data, from the services' routers."""
    # Imported here: the contract package does not otherwise depend on the services.
    from faststream.kafka import KafkaBroker
    from faststream.specification import AsyncAPI

    from patchtwin.cli.app import SERVICES, include_routers
    from patchtwin.core.stage import Stage
    from patchtwin.settings import Settings
    from patchtwin.twins import Runtimes

    # Defaults, not this machine's PATCHTWIN_* environment: the document names the default topics.
    settings = Settings.model_construct(max_twins=1)
    broker = KafkaBroker(
        SERVER,
        specification_url=SERVER,
        description="The Kafka cluster (compose.yaml's; elsewhere PATCHTWIN_KAFKA_BOOTSTRAP_SERVERS). "
        "Topic names are the defaults; PATCHTWIN_TOPIC_PREFIX prefixes them all.",
        logger=None,
    )
    # Routers only declare here: nothing is started, so no pool or runtime is ever used.
    pool = cast(Any, None)
    stages = {name: Stage(name, pool=pool, broker=broker, settings=settings) for name in SERVICES}
    include_routers(broker, stages, Runtimes([]))
    document = AsyncAPI(
        broker,
        title="patchtwin",
        version=SCHEMA_VERSION,
        description="The events of the patchtwin pipeline, one topic per event (docs/contract.md). "
        "Messages are keyed by run_id; values are JSON (UTF-8).",
    ).to_specification().to_jsonable()
    return _with_contract(cast(dict[str, Any], document))


def _with_contract(document: dict[str, Any]) -> dict[str, Any]:
    """Adds what FastStream cannot see from the handlers: each subscribed topic's event as its
    message's payload, and the headers of the wire contract."""
    models = {event.topic.value: event.__name__ for event in EVENTS}
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    for channel in document["channels"].values():
        topic = channel["address"]
        for ref in channel["messages"].values():
            message = messages[_unref(ref["$ref"], "#/components/messages/")]
            if topic == Topic.DLQ.value:
                message["headers"] = _DLQ_HEADERS
                continue
            model = models[topic]
            if model not in schemas:
                raise LookupError(f"no publisher declares {model} for {topic}; declare one (patchtwin.cli.app)")
            message["payload"] = {"$ref": f"#/components/schemas/{model}"}
            message["headers"] = _CE_HEADERS
    unused = {"EmptyPayload"} - {
        _unref(m["payload"]["$ref"], "#/components/schemas/") for m in messages.values() if "$ref" in m["payload"]
    }
    for name in unused:
        schemas.pop(name, None)
    return document


def _unref(ref: str, prefix: str) -> str:
    """The component name a `$ref` points to (references are URI fragments: `+` is `%2B`)."""
    assert ref.startswith(prefix), ref
    return unquote(ref[len(prefix):])


def render() -> str:
    """The document's text as checked in."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    generate.main()
    ASYNCAPI_FILE.write_text(render())


if __name__ == "__main__":
    main()
