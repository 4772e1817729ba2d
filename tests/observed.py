"""What a test session observes: every span, kept in memory by the real OpenTelemetry SDK.

Import the fixture into a test module (`from tests.observed import spans`) to use it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from patchtwin.observability import telemetry
from patchtwin.settings import Settings


@pytest.fixture(scope="session")
def spans(settings: Settings) -> InMemorySpanExporter:
    """The process's tracer provider (as the services install it), plus an in-memory exporter."""
    telemetry.setup(settings)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, SdkTracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def wait_for_spans(
    exporter: InMemorySpanExporter,
    done: Callable[[Sequence[ReadableSpan]], bool],
    timeout_s: float = 30,
) -> Sequence[ReadableSpan]:
    """Finished spans once `done(spans)` holds (spans end a moment after their events go out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        finished = exporter.get_finished_spans()
        if done(finished) or time.monotonic() > deadline:
            return finished
        await asyncio.sleep(0.1)
