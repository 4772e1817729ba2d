"""What a service manager's answer to `status` means, the same for readiness and snapshots."""

from __future__ import annotations

import base64
import logging

from schemas.state import ServiceState

log = logging.getLogger("patchtwin.platforms")

SYSTEMD_STATES = {"active": "running", "reloading": "running", "inactive": "stopped",
                  "deactivating": "stopped", "failed": "failed", "activating": "unknown"}


def service_state(manager: str, exit_code: int, output: str) -> ServiceState:
    """The uniform state from what a manager answered to `status`.

    systemd: `systemctl is-active` prints active / inactive / failed / ...;
    sysv and supervised commands: LSB status codes — 0 running, 1 and 2 dead with a pid or
    lock file left (failed), 3 not running (stopped), anything else unknown.
    """
    detail = output.strip()[:500]
    if manager == "systemd":
        word = detail.splitlines()[0].strip() if detail else ""
        state = SYSTEMD_STATES.get(word, "unknown")
        return ServiceState(state=state, manager="systemd", detail=detail)  # type: ignore[arg-type]
    if manager in ("sysv", "command"):
        lsb = {0: "running", 1: "failed", 2: "failed", 3: "stopped"}
        return ServiceState(state=lsb.get(exit_code, "unknown"), manager=manager, detail=detail)  # type: ignore[arg-type]
    return ServiceState(state="unknown", manager="none", detail=detail or "no service manager in the twin")


def decode_b64(text: str) -> str:
    """A field the twin's shell sent base64-encoded (so any bytes survive the line format);
    garbled, it reads as empty."""
    try:
        return base64.b64decode(text).decode("utf-8", "replace")
    except ValueError as exc:  # binascii.Error included
        log.debug("not base64: %r: %s", text[:80], exc)
        return ""
