"""The inbox: what a stage does with an incoming value before any work — decode, validate,
and route poison (a run's failure when a run id can be read, a dead letter otherwise).

Why here and not in FastStream: its own JSON decoding raises on poison before any handler
runs, and a handler that never runs cannot dead-letter the message, which then blocks its
partition. So values reach the stage undecoded (`undecoded`) and are decoded here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from patchtwin.core.bus import Undecodable, parse_value, source_of, validate_event
from patchtwin.core.retry import retrying
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.events import Event, RunFailed
from schemas.topics import Topic

E = TypeVar("E", bound=Event)
log = logging.getLogger("patchtwin.stage")

#: A stage's own step between JSON and validation (the provisioner assigns ids to a request
#: without them): the decoded object and the raw value in, the object to validate out.
Prepare = Callable[[dict[str, Any], bytes], dict[str, Any]]
#: Records a poison value that names a run as that run's failure (the value's bytes are its
#: input); False when the run id already belongs to another input.
FailRun = Callable[[RunFailed, bytes], Awaitable[bool]]


async def undecoded(message: Any) -> Any:
    """FastStream's decoder for every stage: the value as it came (see the module's why)."""
    return message.body


class Inbox:
    """One stage's intake of messages."""

    def __init__(self, stage: str, *, broker: KafkaBroker, settings: Settings) -> None:
        self.stage = stage
        self.source = source_of(stage)
        self.broker = broker
        self.settings = settings

    def decode(self, message: KafkaMessage, model: type[E], prepare: Prepare | None = None) -> E:
        """The message's event; `Undecodable` when its value is not one."""
        value: bytes | None = getattr(message.raw_message, "value", None)
        data = parse_value(value, self.settings.max_message_bytes)
        if prepare is not None and isinstance(data, dict):
            data = prepare(data, value or b"")
        return validate_event(data, model)

    async def reject(self, bad: Undecodable, message: KafkaMessage, fail_run: FailRun) -> None:
        """Poison: the run's failure when a run id can be read, a dead letter otherwise (or
        when that run id is another input's)."""
        log.warning("%s: rejected message: %s (%s)", self.stage, bad.message, bad.code)
        if bad.run_id is None:
            await self.dead_letter(message, bad.code, bad.message)
            return
        failed = RunFailed(
            run_id=bad.run_id, stage=self.stage, code=bad.code, message=bad.message, details={"errors": bad.errors}
        )
        if not await fail_run(failed, getattr(message.raw_message, "value", None) or b""):
            await self.dead_letter(
                message, Code.DUPLICATE_RUN_ID,
                f"run {bad.run_id} already exists with another body; this message was not run ({bad.message})",
            )

    async def dead_letter(self, message: KafkaMessage, code: Code, reason: str) -> None:
        """Parks a message no run can take on `patchtwin.dlq`, as it came, with why in headers.
        Raises when the broker keeps refusing: the message is then not committed, not lost."""
        raw = message.raw_message
        headers = {
            "patchtwin_error_code": code.value,
            "patchtwin_error_reason": reason[:2000],
            "patchtwin_source_topic": str(getattr(raw, "topic", "")),
            "patchtwin_source_partition": str(getattr(raw, "partition", "")),
            "patchtwin_source_offset": str(getattr(raw, "offset", "")),
            "ce_source": self.source,
        }
        value: bytes = getattr(raw, "value", None) or b""
        limit = self.settings.max_message_bytes
        if len(value) > limit:
            headers["patchtwin_truncated_from"] = str(len(value))
            value = value[:limit]
        log.warning("%s: dead-lettered a message from %s: %s (%s)", self.stage,
                    headers["patchtwin_source_topic"], reason[:200], code.value)
        await retrying(
            f"{self.stage}: dead-letter",
            lambda: self.broker.publish(
                value, self.settings.topic(Topic.DLQ.value), key=getattr(raw, "key", None), headers=headers
            ),
            self.settings,
        )
