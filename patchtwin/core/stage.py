"""What every service does around its own work: decode, claim, retry, record, publish.

A service's handler is three lines: `receive` the event, `handle` it with the
service's work function, done. Everything that makes a stage safe under
redelivery and crashes lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import stamina
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from patchtwin.core.bus import Undecodable, cloudevent_headers, parse_value, validate_event
from patchtwin.core.retry import retrying
from patchtwin.core.store import (
    Claim,
    ClaimResult,
    Fenced,
    Ledger,
    OutboxRecord,
    fingerprint,
    mark_published,
    pending_outbox,
)
from patchtwin.exceptions import PatchtwinError, TransientError
from patchtwin.observability import telemetry
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.events import Event, RunFailed, StageSpan, TwinRequested
from schemas.topics import Topic

E = TypeVar("E", bound=Event)
log = logging.getLogger("patchtwin.core.stage")
#: The message whose event is being handled (set by `receive`), so `handle` can dead-letter
#: it; a context variable, because stages with several workers handle messages concurrently.
_current_message: ContextVar[KafkaMessage | None] = ContextVar("patchtwin_current_message", default=None)


def request_key(request: TwinRequested) -> str:
    """What makes two requests the same run: the whole body except the ids and time a client
    or our decoding may assign per message. The same body sent again is the same run (one
    verdict); another body under the same run id is a DUPLICATE_RUN_ID."""
    return fingerprint(request.model_dump(mode="json", exclude={"event_id", "occurred_at"}))


#: Stages whose work is pointless once the run has a verdict (e.g. the watchdog's).
_BEFORE_THE_VERDICT = frozenset({"provisioner", "executor", "prober"})


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
        #: Who holds a run's lease: this process and stage, unique per start.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{name}:{uuid.uuid4().hex[:6]}"
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
            # The value is decoded by `receive`, never by FastStream: its own JSON decoding
            # raises on poison (a value nested too deep; invalid JSON sent as
            # `content-type: application/json`) before any handler runs, and a handler that
            # never runs cannot dead-letter the message, which then blocks its partition.
            "decoder": _undecoded,
            "session_timeout_ms": self.settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.settings.kafka_heartbeat_interval_ms,
        }

    # -- receiving ---------------------------------------------------------------------------

    async def receive(self, message: KafkaMessage, model: type[E]) -> E | None:
        """The decoded event, or None when the value was poison (already routed)."""
        _current_message.set(message)
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
        run_id = bad.run_id
        claim = await self.claim(run_id, fingerprint(fingerprint_of.hex()))
        if claim.claim is Claim.DONE:
            return
        if claim.claim is Claim.CONFLICT:
            await self.dead_letter(
                message, Code.DUPLICATE_RUN_ID,
                f"run {run_id} already exists with another body; this message was not run ({bad.message})",
            )
            return
        failed = RunFailed(
            run_id=bad.run_id,
            stage=self.name,
            code=bad.code,
            message=bad.message,
            details={"errors": bad.errors},
        )
        try:
            stored = await retrying(
                f"{self.name}: record {run_id}",
                lambda: self.ledger.finish(run_id, failed, source=self.source, attempt=claim.attempts),
                self.settings,
            )
        except Fenced as fenced:
            log.warning("%s", fenced)
            return
        await self.publish(stored)

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
        log.warning("%s: dead-lettered a message from %s: %s (%s)", self.name,
                    headers["patchtwin_source_topic"], reason[:200], code.value)
        await retrying(
            f"{self.name}: dead-letter",
            lambda: self.broker.publish(value, self.topic(Topic.DLQ), key=getattr(raw, "key", None), headers=headers),
            self.settings,
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
        if key is None and isinstance(event, TwinRequested):
            fp = request_key(event)
        else:
            fp = fingerprint(key if key is not None else event.model_dump(mode="json"))
        claim = await self.claim(event.run_id, fp)
        if claim.claim is Claim.DONE:
            log.info("%s: run %s already handled; redelivery ignored", self.name, event.run_id)
            return
        if claim.claim is Claim.CONFLICT:
            message = _current_message.get()
            if isinstance(event, TwinRequested) and message is not None:
                await self.dead_letter(
                    message, Code.DUPLICATE_RUN_ID,
                    f"run {event.run_id} already exists with another body; this request was not run",
                )
            else:
                log.warning("%s: run %s came again with another input; ignored", self.name, event.run_id)
            return
        if isinstance(event, TwinRequested):
            deadline_s = self.settings.readiness_timeout_s + event.patch.timeout_s + self.settings.run_deadline_margin_s
            await retrying(f"{self.name}: deadline {event.run_id}",
                           lambda: self.ledger.set_deadline(event.run_id, deadline_s), self.settings)
        if self.name in _BEFORE_THE_VERDICT and await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM verdicts WHERE run_id = $1)", event.run_id
        ):
            log.warning("%s: run %s already has its verdict; not handled", self.name, event.run_id)
            await self.ledger.abandon(event.run_id, claim.attempts, "the run already has its verdict")
            return
        started = now()
        async with self._leased(event.run_id, claim.attempts):
            if claim.claim is Claim.RESUMED and claim.attempts > self.settings.stage_max_attempts:
                outgoing: Event = self.failure(
                    event, Code.RETRIES_EXHAUSTED,
                    f"{self.name} stopped {claim.attempts - 1} times while handling this run; not tried again",
                    started, True, {"attempts": claim.attempts - 1}, context,
                )
            elif claim.claim is Claim.RESUMED and on_resume is not None:
                outgoing = await on_resume()
            else:
                outgoing = await self._attempt(event, work, started, context or {})
            extra = record(outgoing) if record is not None else None
            try:
                stored = await retrying(
                    f"{self.name}: record {event.run_id}",
                    lambda: self.ledger.finish(
                        event.run_id, outgoing, source=self.source, also=extra, attempt=claim.attempts
                    ),
                    self.settings,
                )
            except Fenced as fenced:
                log.warning("%s", fenced)  # another worker took the run over; its result stands
                return
        await self.publish(stored)

    async def claim(self, run_id: str, fp: str) -> ClaimResult:
        """This worker's claim on the run; waits while another live worker holds it (a
        duplicate or a redelivery after a rebalance), so the run is never worked on twice at
        once and is taken over as soon as that worker's lease runs out."""
        while True:
            claim = await retrying(
                f"{self.name}: claim {run_id}",
                lambda: self.ledger.claim(run_id, fp, owner=self.owner, lease_s=self.settings.stage_lease_s),
                self.settings,
            )
            if claim.claim is not Claim.BUSY:
                return claim
            await asyncio.sleep(min(1.0, self.settings.stage_lease_s / 4))

    @contextlib.asynccontextmanager
    async def _leased(self, run_id: str, attempt: int) -> AsyncIterator[None]:
        """Renews the claim's lease while the work runs; hands it back when the work is cut
        short (shutdown), so the next worker to get the message takes the run over at once."""

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self.settings.stage_lease_s / 3)
                with contextlib.suppress(Exception):
                    if not await self.ledger.renew(run_id, attempt, self.settings.stage_lease_s):
                        log.warning("%s: lost the lease of run %s (attempt %d)", self.name, run_id, attempt)
                        return

        renewer = asyncio.create_task(renew_forever())
        try:
            yield
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.ledger.hand_back(run_id, attempt))
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    @telemetry.traced_stage  # observe: a span and metrics per stage's work
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

    @telemetry.continues_trace  # observe: publishes in the run's trace, also from the relay
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


async def _undecoded(message: Any) -> Any:
    return message.body


def _with_assigned_ids(data: dict[str, Any], value: bytes) -> dict[str, Any]:
    """A request without run_id/event_id gets ones derived from its bytes, so a redelivery
    of the same message maps to the same run."""
    digest = hashlib.sha256(value).hexdigest()
    data = dict(data)
    if not data.get("run_id"):
        data["run_id"] = f"run-{digest[:32]}"
    if not data.get("event_id"):
        data["event_id"] = f"req-{digest[:32]}"
    return data
