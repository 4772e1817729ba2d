import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from patchtwin.core.stage import Stage
from patchtwin.twins import Runtimes
from schemas import ChecksCompleted, Code, Event, RunFailed, StageName, Topic, VerdictIssued
from services.analyzer.logic import judge, judge_failure, store_verdict

E = TypeVar("E", bound=Event)
log = logging.getLogger("patchtwin.analyzer")


def build_router(stage: Stage, runtimes: Runtimes) -> KafkaRouter:
    router = KafkaRouter()
    router.publisher(stage.topic(Topic.VERDICT_ISSUED), title="verdict.issued", schema=VerdictIssued)

    # One consumer for both inputs (two in one group would rebalance each other), and one
    # ledger key per run: whichever input arrives first makes the verdict, the other is ignored.
    @router.subscriber(
        stage.topic(Topic.CHECKS_COMPLETED),
        stage.topic(Topic.RUN_FAILED),
        **stage.subscription(),
        title="checks.completed+run.failed:analyzer",
    )
    async def on_checks_completed_or_run_failed(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple), "a single-message subscriber"
        if record.topic == stage.topic(Topic.RUN_FAILED):
            failed = await stage.receive(message, RunFailed)
            if failed is not None:
                await stage.handle(
                    failed, _safely(judge_failure, failed), key=failed.run_id, record=store_verdict
                )
            return
        completed = await stage.receive(message, ChecksCompleted)
        if completed is not None:
            await stage.handle(
                completed, _safely(judge, completed), key=completed.run_id, record=store_verdict
            )

    return router


def _safely(judge_fn: Callable[[E], VerdictIssued], event: E) -> Callable[[], Awaitable[VerdictIssued]]:
    """The analyzer is the last stage: even its own fault must end in a verdict, not a RunFailed."""

    async def work() -> VerdictIssued:
        try:
            return judge_fn(event)
        except Exception as exc:
            log.exception("analyzer: judging run %s failed; it gets an error verdict", event.run_id)
            return judge_failure(RunFailed(run_id=event.run_id, stage=StageName.ANALYZER,
                                           code=Code.INTERNAL_ERROR, message=f"{type(exc).__name__}: {exc}"))

    return work
