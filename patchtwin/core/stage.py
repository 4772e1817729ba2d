"""What every service does around its own work: receive, claim, retry, record, publish.

A service's handler is three lines: `receive` the event, `handle` it with the service's
work function, done. The parts that make a stage safe under redelivery and crashes are
each their own module — the inbox (decode, dead-letter), the run ledger (claim, lease,
fence, finish) and the outbox (publish, relay) — and `Stage` composes them. What is
particular to one service's input (the provisioner's requests) comes in as parameters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import stamina
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from patchtwin.core.bus import Undecodable, source_of
from patchtwin.core.inbox import Inbox, Prepare, undecoded
from patchtwin.core.ledger import Claim, ClaimResult, Fenced, Ledger, fingerprint
from patchtwin.core.outbox import Outbox, OutboxRecord
from patchtwin.core.retry import retrying
from patchtwin.exceptions import PatchtwinError, TransientError
from patchtwin.observability import telemetry
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.events import Event, RunFailed, StageSpan
from schemas.stages import StageName
from schemas.topics import Topic

E = TypeVar("E", bound=Event)
log = logging.getLogger("patchtwin.stage")

#: Stages whose work is pointless once the run has its verdict (the watchdog may give one early).
BEFORE_THE_VERDICT = frozenset({StageName.PROVISIONER, StageName.EXECUTOR, StageName.PROBER})


def now() -> datetime:
    return datetime.now(UTC)


class Stage:
    """One service's stage: its name, inbox, ledger and outbox."""

    def __init__(
        self, name: str, *, pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings
    ) -> None:
        self.name = name
        self.source = source_of(name)
        # a topic prefix makes another deployment on the same cluster: its own consumer groups too
        self.group_id = f"{settings.topic_prefix}patchtwin-{name}"
        self.pool = pool
        self.broker = broker
        self.settings = settings
        self.inbox = Inbox(name, broker=broker, settings=settings)
        self.ledger = Ledger(pool, name)
        self.outbox = Outbox(name, pool=pool, broker=broker, settings=settings)
        #: Who holds a run's lease: this process and stage, unique per start.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{name}:{uuid.uuid4().hex[:6]}"

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
            "decoder": undecoded,  # values are decoded by the inbox, never by FastStream (see `inbox`)
            "session_timeout_ms": self.settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.settings.kafka_heartbeat_interval_ms,
        }

    # -- receiving ---------------------------------------------------------------------------

    async def receive(self, message: KafkaMessage, model: type[E], *, prepare: Prepare | None = None) -> E | None:
        """The decoded event, or None when the value was poison (already routed). `prepare`
        is the stage's own step between JSON and validation."""
        try:
            return self.inbox.decode(message, model, prepare)
        except Undecodable as bad:
            await self.inbox.reject(bad, message, self._fail_poisoned_run)
            return None

    async def dead_letter(self, message: KafkaMessage, code: Code, reason: str) -> None:
        await self.inbox.dead_letter(message, code, reason)

    async def _fail_poisoned_run(self, failed: RunFailed, value: bytes) -> bool:
        """Ends the run a poison value names with its RunFailed; False when the run id is
        another input's (a conflict: nothing recorded)."""
        claim = await self.claim(failed.run_id, fingerprint(value.hex()))
        if claim.claim is Claim.CONFLICT:
            return False
        if claim.claim is not Claim.DONE and (stored := await self._record(failed, claim, None)) is not None:
            await self.publish(stored)
        return True

    # -- handling ----------------------------------------------------------------------------

    async def handle(
        self,
        event: Event,
        work: Callable[[], Awaitable[Event]],
        *,
        key: Any = None,
        on_resume: Callable[[], Awaitable[Event]] | None = None,
        on_conflict: Callable[[], Awaitable[None]] | None = None,
        deadline_s: float | None = None,
        context: dict[str, Any] | None = None,
        record: Callable[[Event], Callable[[asyncpg.Connection], Awaitable[None]] | None] | None = None,
    ) -> None:
        """Runs `work` once per run id and publishes what it returns (or a RunFailed).

        `key` is what makes two inputs the same (the whole event by default); `on_conflict`
        runs when the run id came before with another key (else it is logged and ignored);
        `deadline_s` sets when the whole run must have its verdict by (the first stage's)."""
        claim = await self.claim(event.run_id, fingerprint(key if key is not None else event.model_dump(mode="json")))
        if claim.claim is Claim.DONE:
            log.info("%s: run %s already handled; redelivery ignored", self.name, event.run_id)
            return
        if claim.claim is Claim.CONFLICT:
            if on_conflict is None:
                log.warning("%s: run %s came again with another input; ignored", self.name, event.run_id)
            else:
                await on_conflict()
            return
        if deadline_s is not None:
            await retrying(f"{self.name}: deadline {event.run_id}",
                           lambda: self.ledger.set_deadline(event.run_id, deadline_s), self.settings)
        if self.name in BEFORE_THE_VERDICT and await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM verdicts WHERE run_id = $1)", event.run_id
        ):
            log.warning("%s: run %s already has its verdict; not handled", self.name, event.run_id)
            await self.ledger.abandon(event.run_id, claim.attempts, "the run already has its verdict")
            return
        started = now()
        async with self.ledger.leased(event.run_id, claim.attempts, self.settings.stage_lease_s):
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
            stored = await self._record(outgoing, claim, record(outgoing) if record is not None else None)
        if stored is not None:
            await self.publish(stored)

    async def _record(
        self, outgoing: Event, claim: ClaimResult, also: Callable[[asyncpg.Connection], Awaitable[None]] | None
    ) -> OutboxRecord | None:
        """The run finished with `outgoing`, as this claim's attempt; None when fenced."""
        try:
            return await retrying(
                f"{self.name}: record {outgoing.run_id}",
                lambda: self.ledger.finish(
                    outgoing.run_id, outgoing, source=self.source, also=also, attempt=claim.attempts
                ),
                self.settings,
            )
        except Fenced as fenced:
            log.warning("%s", fenced)  # another worker took the run over; its result stands
            return None

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
        await self.outbox.publish(record)

    async def relay_pending(self) -> int:
        return await self.outbox.relay_pending()

    def start_relay(self, interval_s: float = 2.0) -> None:
        self.outbox.start_relay(interval_s)

    async def stop_relay(self) -> None:
        await self.outbox.stop_relay()
