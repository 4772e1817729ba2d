"""All configuration as one typed object, read from the environment (PATCHTWIN_*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Defaults suit one machine; `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` point elsewhere."""

    model_config = SettingsConfigDict(env_prefix="PATCHTWIN_", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "PATCHTWIN_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "PATCHTWIN_DATABASE_URL")
    )
    topic_prefix: str = ""
    state_dir: Path = Path.home() / ".patchtwin"

    # twins
    docker_url: str | None = None
    twin_cpus: float = 2.0
    twin_memory_mb: int = 4096
    twin_pids: int = 1024
    twin_ttl_s: int = 24 * 3600
    readiness_timeout_s: float = 60.0
    patch_output_cap_bytes: int = 1024 * 1024
    patch_kill_grace_s: float = 5.0

    # bus
    max_message_bytes: int = 1024 * 1024
    #: Apache Kafka refuses less than 6 s by default; the embedded broker takes 2 s, which
    #: makes joins (about half of it) and failover after a crash quicker.
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    owner: str = "patchtwin"

    # transient-failure retries (broker, database, Docker busy)
    retry_attempts: int = 4
    retry_initial_s: float = 0.5
    retry_max_s: float = 8.0

    # janitor
    janitor_interval_s: float = 60.0

    # observability (telemetry.py, http.py, logs.py, samplers.py)
    #: where spans go: nowhere, OTLP (OTEL_EXPORTER_OTLP_* variables), or the console
    otel_exporter: Literal["none", "otlp", "console"] = "none"
    #: /healthz /readyz /metrics: 0 = any free port, -1 = no HTTP endpoint
    http_port: int = 8080
    http_host: str = "0.0.0.0"
    log_format: Literal["json", "text"] = "json"
    #: how often twins' CPU/memory and consumer lag are sampled
    metrics_interval_s: float = 10.0

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
