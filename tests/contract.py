"""The examples of docs/contract.md (the wire contract), copied verbatim: what outside clients send and read."""

from __future__ import annotations

from typing import Any

TWIN_REQUESTED: dict[str, Any] = {
    "run_id": "scan-2026-11-22-web-01-openssl",
    "asset": {
        "id": "web-01",
        "platform": {"os": "debian", "version": "12"},
        "image": "optional explicit image reference",
        "services": ["nginx"],
    },
    "patch": {"id": "P-1001", "script": "#!/bin/sh\nset -e\n...", "timeout_s": 600},
    "checks": [
        {"type": "port", "port": 80},
        {"type": "service", "name": "nginx"},
        {"type": "http", "url": "http://127.0.0.1/", "expect_status": 200},
        {"type": "process", "name": "nginx"},
        {"type": "package", "name": "openssl"},
        {"type": "log", "path": "/var/log/nginx/error.log", "pattern": "emerg|crit"},
        {"type": "command", "run": "nginx -t", "expect_exit": 0},
    ],
}

#: The fields of VerdictIssued a consumer can rely on.
VERDICT_FIELDS = {"event_id", "run_id", "status", "confidence", "summary", "issues", "warnings",
                  "checks"}
VERDICT_CHECK_FIELDS = {"name", "type", "baseline", "after", "classification"}
