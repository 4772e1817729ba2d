"""Kafka wiring: the broker factory, CloudEvents headers, and decoding of incoming values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from patchtwin.observability import telemetry
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.events import Event
from schemas.request import RUN_ID_PATTERN

E = TypeVar("E", bound=Event)

_RUN_ID_RE = __import__("re").compile(RUN_ID_PATTERN)


def make_broker(settings: Settings, *, client_id: str = "patchtwin") -> KafkaBroker:
    if not settings.kafka_bootstrap_servers:
        raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set and no embedded broker was started")
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        max_request_size=settings.max_message_bytes * 4,
        graceful_timeout=settings.shutdown_grace_s,
        logger=None,
        middlewares=telemetry.broker_middlewares(),  # observe: traceparent in and out
    )


def source_of(stage: str) -> str:
    """A stage's CloudEvents `ce_source` (and the outbox's `source` column): `patchtwin/<stage>`."""
    return f"patchtwin/{stage}"


def cloudevent_headers(
    *, event_id: str, ce_type: str, source: str, run_id: str, time: datetime | None = None
) -> dict[str, str]:
    """CloudEvents Kafka binding, binary mode (docs/contract.md)."""
    return {
        "ce_specversion": "1.0",
        "ce_id": event_id,
        "ce_type": ce_type,
        "ce_source": source,
        "ce_time": (time or datetime.now(UTC)).isoformat(),
        "ce_subject": run_id,
        "content-type": "application/json",
    }


class Undecodable(Exception):
    """An incoming value that is not a valid event. `run_id` is set when one could be read."""

    def __init__(self, code: Code, message: str, run_id: str | None, errors: list[Any]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.run_id = run_id
        self.errors = errors


def readable_run_id(data: Any) -> str | None:
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) and _RUN_ID_RE.match(run_id) else None


def parse_value(value: bytes | None, max_bytes: int) -> Any:
    """Bytes → JSON data, or Undecodable with the reason."""
    if not value:
        raise Undecodable(Code.UNDECODABLE_MESSAGE, "empty message", None, [])
    if len(value) > max_bytes:
        run_id = _sniff_run_id(value[: 64 * 1024])
        raise Undecodable(
            Code.MESSAGE_TOO_LARGE,
            f"message of {len(value)} bytes is over the limit of {max_bytes} bytes",
            run_id,
            [],
        )
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Undecodable(Code.UNDECODABLE_MESSAGE, f"not UTF-8 JSON: {exc}", None, []) from exc
    except RecursionError as exc:  # e.g. `[[[[…]]]]` nested deeper than the parser goes
        raise Undecodable(Code.UNDECODABLE_MESSAGE, "JSON nested too deeply to read", None, []) from exc


def validate_event(data: Any, model: type[E]) -> E:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{e['loc'] or '(root)'}: {e['msg']}" for e in errors[:10])
        raise Undecodable(
            Code.INVALID_REQUEST, f"invalid {model.__name__}: {summary}", readable_run_id(data), errors
        ) from exc


def _sniff_run_id(prefix: bytes) -> str | None:
    """Finds `"run_id": "..."` near the start of an oversized value without parsing it all."""
    import re

    match = re.search(rb'"run_id"\s*:\s*"([^"\\]{1,128})"', prefix)
    if not match:
        return None
    candidate = match.group(1).decode("utf-8", "replace")
    return candidate if _RUN_ID_RE.match(candidate) else None
