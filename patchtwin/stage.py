"""What every service does around its own work: decode, claim, retry, record, publish.

A service's handler is three lines: `receive` the event, `handle` it with the
service's work function, done. Everything that makes a stage safe under
redelivery and crashes lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import stamina
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from patchtwin.bus import Undecodable, cloudevent_headers, parse_value, validate_event
from patchtwin.exceptions import PatchtwinError, TransientError
from patchtwin.settings import Settings
from patchtwin.store import (
    Claim,
    Ledger,
    OutboxRecord,
    fingerprint,
    mark_published,
    pending_outbox,
)
from schemas.codes import Code
from schemas.events import Event, RunFailed, StageSpan
from schemas.topics import Topic

E = TypeVar("E", bound=Event)
log = logging.getLogger("patchtwin.stage")


def now() -> datetime:
    return datetime.now(UTC)


class Stage:
    """One service's stage: its name, ledger, outbox relay and publishing."""

    def __init__(
        self, name: str, *, pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings
    ) -> None:
        self.name = name
        self.source = f"patchtwin/{name}"
        # a topic prefix makes another deployment on the same cluster: its own consumer groups too
        self.group_id = f"{settings.topic_prefix}patchtwin-{name}"
        self.pool = pool
        self.broker = broker
        self.settings = settings
        self.ledger = Ledger(pool, name)
        self._relay_task: asyncio.Task[None] | None = None

    def topic(self, topic: Topic) -> str:
        return self.settings.topic(topic.value)

    def subscription(self, *, workers: int = 1) -> dict[str, Any]:
        """How every stage consumes: its own group, from the earliest offset for a new group,
        committing only after the handler finished (a crash means redelivery, not loss).
        `workers` > 1 runs that many consumers of the group, each handling its partitions in
        order, so one run's events are still handled one after another."""
        return {
            "max_workers": workers,
            "fetch_max_wait_ms": self.settings.kafka_fetch_max_wait_ms,
            # a worker may hold a message while the twin limit is reached; heartbeats go on
            "max_poll_interval_ms": 3_600_000,
            "group_id": self.group_id,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "session_timeout_ms": self.settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.settings.kafka_heartbeat_interval_ms,
        }

    # -- receiving ---------------------------------------------------------------------------

    async def receive(self, message: KafkaMessage, model: type[E]) -> E | None:
        """The decoded event, or None when the value was poison (already routed)."""
        raw = message.raw_message
        value: bytes | None = getattr(raw, "value", None)
        try:
            data = parse_value(value, self.settings.max_message_bytes)
            if model.topic is Topic.TWIN_REQUESTED and isinstance(data, dict):
                data = _with_assigned_ids(data, value or b"")
            return validate_event(data, model)
        except Undecodable as bad:
            await self.reject(bad, message, fingerprint_of=value or b"")
            return None

    async def reject(self, bad: Undecodable, message: KafkaMessage, *, fingerprint_of: bytes) -> None:
        """Poison: an error run when a run id can be read, a dead letter otherwise."""
        log.warning("rejected message: %s (%s)", bad.message, bad.code)
        if bad.run_id is None:
            await self.dead_letter(message, bad.code, bad.message)
            return
        claim = await self.ledger.claim(bad.run_id, fingerprint(fingerprint_of.hex()))
        if claim.claim is Claim.DONE:
            return
        if claim.claim is Claim.CONFLICT:
            await self.dead_letter(message, Code.DUPLICATE_RUN_ID, f"run {bad.run_id} exists")
            return
        failed = RunFailed(
            run_id=bad.run_id,
            stage=self.name,
            code=bad.code,
            message=bad.message,
            details={"errors": bad.errors},
        )
        await self.publish(await self.ledger.finish(bad.run_id, failed, source=self.source))

    async def dead_letter(self, message: KafkaMessage, code: Code, reason: str) -> None:
        raw = message.raw_message
        headers = {
            "patchtwin_error_code": code.value,
            "patchtwin_error": reason[:2000],
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
        await self.broker.publish(
            value, self.topic(Topic.DLQ), key=getattr(raw, "key", None), headers=headers
        )

    # -- handling ----------------------------------------------------------------------------

    async def handle(
        self,
        event: Event,
        work: Callable[[], Awaitable[Event]],
        *,
        key: Any = None,
        on_resume: Callable[[], Awaitable[Event]] | None = None,
        context: dict[str, Any] | None = None,
        record: Callable[[Event], Callable[[asyncpg.Connection], Awaitable[None]] | None] | None = None,
    ) -> None:
        """Runs `work` once per run id and publishes what it returns (or a RunFailed)."""
        fp = fingerprint(key if key is not None else event.model_dump(mode="json"))
        claim = await self.ledger.claim(event.run_id, fp)
        if claim.claim is Claim.DONE:
            log.info("%s: run %s already handled; redelivery ignored", self.name, event.run_id)
            return
        if claim.claim is Claim.CONFLICT:
            log.warning("%s: run %s reused with another input", self.name, event.run_id)
            return
        started = now()
        if claim.claim is Claim.RESUMED and on_resume is not None:
            outgoing = await on_resume()
        else:
            outgoing = await self._attempt(event, work, started, context or {})
        extra = record(outgoing) if record is not None else None
        stored = await self.ledger.finish(event.run_id, outgoing, source=self.source, also=extra)
        await self.publish(stored)

    async def _attempt(
        self,
        event: Event,
        work: Callable[[], Awaitable[Event]],
        started: datetime,
        context: dict[str, Any],
    ) -> Event:
        try:
            async for attempt in stamina.retry_context(
                on=TransientError,
                attempts=self.settings.retry_attempts,
                wait_initial=self.settings.retry_initial_s,
                wait_max=self.settings.retry_max_s,
                timeout=None,
            ):
                with attempt:
                    return await work()
        except PatchtwinError as exc:
            return self.failure(event, exc.code, exc.message, started, exc.retryable, exc.details, context)
        except Exception as exc:
            log.exception("%s: internal error on run %s", self.name, event.run_id)
            return self.failure(
                event, Code.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", started, False, {}, context
            )
        raise AssertionError("unreachable")

    def failure(
        self,
        event: Event,
        code: Code,
        message: str,
        started: datetime,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> RunFailed:
        if retryable:
            code = Code.RETRIES_EXHAUSTED if code is Code.INTERNAL_ERROR else code
        ctx = context or {}
        return RunFailed(
            run_id=event.run_id,
            stage=self.name,
            code=code,
            message=message,
            retryable=retryable,
            details=details or {},
            asset_id=ctx.get("asset_id"),
            patch_id=ctx.get("patch_id"),
            timeline=[*ctx.get("timeline", []), StageSpan(stage=self.name, started_at=started, finished_at=now())],
            keep_twin=bool(ctx.get("keep_twin", False)),
        )

    # -- publishing --------------------------------------------------------------------------

    async def publish(self, record: OutboxRecord) -> None:
        """Publishes a stored event now; the relay retries it if this fails."""
        try:
            await self._send(record)
        except Exception:
            log.warning("%s: publish of %s deferred to the relay", self.name, record.event_id, exc_info=True)

    async def _send(self, record: OutboxRecord) -> None:
        headers = cloudevent_headers(
            event_id=record.event_id, ce_type=record.ce_type, source=record.source, run_id=record.run_id
        )
        await self.broker.publish(
            record.payload.encode(),
            self.settings.topic(record.topic),
            key=record.run_id.encode(),
            headers=headers,
        )
        await mark_published(self.pool, record.event_id)

    async def relay_pending(self) -> int:
        sent = 0
        for record in await pending_outbox(self.pool, self.source):
            await self._send(record)
            sent += 1
        return sent

    async def _relay_forever(self, interval_s: float) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.relay_pending()
            await asyncio.sleep(interval_s)

    def start_relay(self, interval_s: float = 2.0) -> None:
        if self._relay_task is None:
            self._relay_task = asyncio.create_task(self._relay_forever(interval_s))

    async def stop_relay(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None


def _with_assigned_ids(data: dict[str, Any], value: bytes) -> dict[str, Any]:
    """A request without run_id/event_id gets ones derived from its bytes, so a redelivery
    of the same message maps to the same run."""
    import hashlib

    digest = hashlib.sha256(value).hexdigest()
    data = dict(data)
    if not data.get("run_id"):
        data["run_id"] = f"run-{digest[:32]}"
    if not data.get("event_id"):
        data["event_id"] = f"req-{digest[:32]}"
    return data
