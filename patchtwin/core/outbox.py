"""The outbox: a stage's outgoing events, stored in its ledger's transaction, then published.

Why: the event a stage produced is committed together with "run X is done", so a crash
between the commit and the publish loses nothing; the relay publishes whatever is still
unsent, exactly as it was stored (same event id, same trace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg
from faststream.kafka import KafkaBroker

from patchtwin.core.bus import cloudevent_headers, source_of
from patchtwin.observability import telemetry
from patchtwin.observability.logs import about_run
from patchtwin.observability.telemetry import current_traceparent
from patchtwin.settings import Settings
from schemas.events import Event

log = logging.getLogger("patchtwin.stage")

#: For writes whose loss in a database crash is harmless, the commit does not wait for the
#: disk (one fsync less on every Kafka hop): a lost "published" mark makes the relay publish
#: again and consumers drop the duplicate (see also `ledger`).
LOSABLE = "SET LOCAL synchronous_commit = off"


@dataclass(frozen=True)
class OutboxRecord:
    event_id: str
    run_id: str
    topic: str
    source: str
    ce_type: str
    payload: str
    traceparent: str | None = None  # observe: the run's trace continues from the outbox

    @classmethod
    def of(cls, event: Event, source: str) -> OutboxRecord:
        return cls(
            event_id=event.event_id,
            run_id=event.run_id,
            topic=event.topic.value,
            source=source,
            ce_type=event.ce_type(),
            payload=event.model_dump_json(),
            traceparent=current_traceparent(),
        )

    async def insert(self, conn: asyncpg.Connection) -> None:
        """Stores the event in `conn`'s transaction (the stage's), once per event id."""
        await conn.execute(
            "INSERT INTO outbox (event_id, run_id, topic, source, ce_type, payload, traceparent) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
            self.event_id,
            self.run_id,
            self.topic,
            self.source,
            self.ce_type,
            self.payload,
            self.traceparent,
        )


async def pending_outbox(
    pool: asyncpg.Pool, source: str, limit: int = 100, *, min_age_s: float = 5.0
) -> list[OutboxRecord]:
    """Stored events not yet published. Only those older than `min_age_s`: a younger one is most
    likely being published right now by the stage that stored it, and sending it from the relay
    too would put the same event on the topic twice."""
    rows = await pool.fetch(
        "SELECT event_id, run_id, topic, source, ce_type, payload, traceparent FROM outbox "
        "WHERE published_at IS NULL AND source = $1 AND created_at < now() - make_interval(secs => $3) "
        "ORDER BY created_at LIMIT $2",
        source,
        limit,
        min_age_s,
    )
    return [OutboxRecord(**dict(r)) for r in rows]


async def mark_published(pool: asyncpg.Pool, event_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOSABLE)
        await conn.execute("UPDATE outbox SET published_at = now() WHERE event_id = $1", event_id)


class RelayFailed(Exception):
    """The relay could not publish this stored event (it stays pending)."""

    def __init__(self, record: OutboxRecord) -> None:
        super().__init__(f"could not publish {record.event_id} of run {record.run_id}")
        self.record = record


class Outbox:
    """One stage's publishing: now, right after its commit, and later by the relay."""

    def __init__(self, stage: str, *, pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings) -> None:
        self.stage = stage
        self.source = source_of(stage)
        self.pool = pool
        self.broker = broker
        self.settings = settings
        self._relay_task: asyncio.Task[None] | None = None

    async def publish(self, record: OutboxRecord) -> None:
        """Publishes a stored event now; the relay retries it if this fails."""
        try:
            await self.send(record)
        except Exception:
            log.warning("%s: publish of %s (run %s) deferred to the relay", self.stage, record.event_id,
                        record.run_id, exc_info=True)

    @telemetry.continues_trace  # observe: publishes in the run's trace, also from the relay
    async def send(self, record: OutboxRecord) -> None:
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
        """Sends this stage's unsent events, oldest first; the number sent. Stops at the first
        that fails (`RelayFailed`, naming its run), leaving it and the rest for the next pass."""
        sent = 0
        for record in await pending_outbox(self.pool, self.source):
            try:
                await self.send(record)
            except Exception as exc:
                raise RelayFailed(record) from exc
            sent += 1
        return sent

    async def relay_forever(self, interval_s: float) -> None:
        """The relay: a pass every `interval_s`; a failed pass is logged, counted and retried."""
        while True:
            try:
                await self.relay_pending()
            except Exception as exc:
                self._relay_failed(exc)
            await asyncio.sleep(interval_s)

    def _relay_failed(self, exc: Exception) -> None:
        """A relay that stops publishing must be visible: a log line and `patchtwin_relay_errors_total`."""
        telemetry.RELAY_ERRORS.add(1, {"stage": self.stage})
        run_id = exc.record.run_id if isinstance(exc, RelayFailed) else None
        cause = exc.__cause__ or exc
        with about_run(run_id):
            log.warning("%s: relay failed %s: %s: %s", self.stage,
                        f"on run {run_id}" if run_id else "reading the outbox", type(cause).__name__, cause)

    def start_relay(self, interval_s: float = 2.0) -> None:
        if self._relay_task is None:
            self._relay_task = asyncio.create_task(self.relay_forever(interval_s))

    async def stop_relay(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None
