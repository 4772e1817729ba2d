"""What is particular to a request (`TwinRequested`), the pipeline's one input from outside:
ids for a request sent without them, what makes two requests the same run, its deadline."""

from __future__ import annotations

import hashlib
from typing import Any

from patchtwin.settings import Settings
from schemas import TwinRequested


def with_assigned_ids(data: dict[str, Any], value: bytes) -> dict[str, Any]:
    """A request without run_id/event_id gets ones derived from its bytes, so a redelivery
    of the same message maps to the same run."""
    digest = hashlib.sha256(value).hexdigest()
    data = dict(data)
    if not data.get("run_id"):
        data["run_id"] = f"run-{digest[:32]}"
    if not data.get("event_id"):
        data["event_id"] = f"req-{digest[:32]}"
    return data


def request_key(request: TwinRequested) -> dict[str, Any]:
    """What makes two requests the same run: the whole body except the ids and time a client
    or our decoding may assign per message. The same body sent again is the same run (one
    verdict); another body under the same run id is a DUPLICATE_RUN_ID."""
    key: dict[str, Any] = request.model_dump(mode="json", exclude={"event_id", "occurred_at"})
    return key


def run_deadline_s(request: TwinRequested, settings: Settings) -> float:
    """Seconds after the request was taken on by which the run must have its verdict (the
    janitor's watchdog fails it after): readiness, the patch's own timeout and a margin."""
    return settings.readiness_timeout_s + request.patch.timeout_s + settings.run_deadline_margin_s
