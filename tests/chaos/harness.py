"""The services as separate OS processes (`patchtwin service NAME`), as they are deployed,
on their own broker, database and instance, so a test can SIGKILL and restart any of them.

The broker is never killed: the embedded Tansu keeps its data in memory only, so killing it
would lose the topics themselves, which no deployment of patchtwin would do to Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from patchtwin.cli.app import SERVICES
from patchtwin.settings import Settings


@dataclass
class Services:
    settings: Settings
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": str(s.kafka_bootstrap_servers),
            "DATABASE_URL": str(s.database_url),
            "PATCHTWIN_INSTANCE": s.instance,
            "PATCHTWIN_STATE_DIR": str(self.log_dir),
            "PATCHTWIN_KAFKA_SESSION_TIMEOUT_MS": str(s.kafka_session_timeout_ms),
            "PATCHTWIN_KAFKA_HEARTBEAT_INTERVAL_MS": str(s.kafka_heartbeat_interval_ms),
            "PATCHTWIN_STAGE_LEASE_S": str(s.stage_lease_s),
            "PATCHTWIN_JANITOR_INTERVAL_S": str(s.janitor_interval_s),
            "PATCHTWIN_RUN_DEADLINE_MARGIN_S": str(s.run_deadline_margin_s),
            "PATCHTWIN_READINESS_TIMEOUT_S": str(s.readiness_timeout_s),
            "PATCHTWIN_SHUTDOWN_GRACE_S": str(s.shutdown_grace_s),
            "PATCHTWIN_HTTP_PORT": "-1",  # five processes on one machine: no shared HTTP port
        }

    def start(self, name: str) -> None:
        assert name in SERVICES
        self.starts[name] = self.starts.get(name, 0) + 1
        log = (self.log_dir / f"{name}.{self.starts[name]}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "patchtwin", "-v", "service", name],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_running(self, name: str, timeout_s: float = 60) -> None:
        """Until the service said it runs (its consumers are started)."""
        log = self.log_dir / f"{name}.{self.starts[name]}.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if f"patchtwin {name} is running" in log.read_text(errors="replace"):
                return
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{name} did not start in {timeout_s}s")

    def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)
        for name in SERVICES:
            self.wait_running(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait(timeout=60)

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.kill(name, sig)
        self.start(name)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
