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
    #: The runtimes this process can use (JSON list: `["docker","kubernetes"]`), and the one a
    #: request without `asset.runtime` gets.
    runtimes: list[Literal["docker", "kubernetes"]] = ["docker"]
    default_runtime: Literal["docker", "kubernetes"] = "docker"

    # kubernetes twins (README, "Kubernetes runtime")
    k8s_in_cluster: bool = False
    k8s_kubeconfig: str | None = None
    k8s_context: str | None = None
    k8s_namespace_prefix: str = "patchtwin-"
    k8s_runtime_class: str | None = None
    k8s_ready_timeout_s: float = 120.0
    k8s_scratch_mb: int = 256
    #: Room in a cloned namespace's quota for the copied workloads, on top of the twin's own.
    k8s_clone_cpus: float = 4.0
    k8s_clone_memory_mb: int = 8192

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

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
