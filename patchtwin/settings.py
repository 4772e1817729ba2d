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
    #: Build a Debian-family base with debootstrap when no registry has it (about 40 s, once).
    build_missing_bases: bool = True
    image_pull_timeout_s: float = 60.0
    #: Building an asset's image (base + pinned packages + files) may take this long.
    asset_build_timeout_s: float = 900.0
    #: Folders whose files are hashed in every system-state snapshot, and the most files hashed.
    snapshot_roots: list[str] = Field(default_factory=lambda: ["/etc"])
    snapshot_max_files: int = 5000
    snapshot_timeout_s: float = 60.0
    #: Twins alive at once across the provisioner's workers; 0 picks 4 per core, fewer when
    #: memory is short (patchtwin.twins.capacity.default_max_twins). More requests wait in Kafka.
    max_twins: int = 0
    #: Per stream: what is kept of the patch's stdout and of its stderr (head and tail).
    patch_output_cap_bytes: int = 1024 * 1024
    #: Per stream: how much of that the events (and the verdict) carry; all of it is in
    #: the `patch_runs` table.
    patch_output_event_bytes: int = 64 * 1024
    patch_kill_grace_s: float = 5.0
    #: Artifacts of one patch, in all; URLs are fetched by the executor, never by the twin.
    artifact_max_bytes: int = 64 * 1024 * 1024
    artifact_fetch_timeout_s: float = 60.0
    #: How long the helper container may take to download a patch's packages.
    package_fetch_timeout_s: float = 300.0
    #: confinement of every twin (README "Isolation"); an asset may relax some, never these
    twin_runtime: str | None = None  # an OCI runtime the engine knows, e.g. "runsc" (gVisor)
    twin_nofile: int = Field(default=4096, ge=64)
    twin_fsize_mb: int = Field(default=1024, ge=1)
    twin_tmpfs_mb: int = Field(default=64, ge=1)
    twin_log_max_mb: int = Field(default=1, ge=1)
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
    #: Messages a provisioner/executor/prober works on at once (one consumer per worker, so
    #: at most the topic's partitions, 4, are useful); the analyzer and janitor take one.
    stage_workers: int = 4
    #: How long the broker may hold a fetch for lack of data. The default of Apache Kafka
    #: clients (500 ms) became most of each hop's latency; 20 ms costs a few idle fetches.
    kafka_fetch_max_wait_ms: int = 20
    #: Names this deployment on a shared Docker engine: twins are labelled with it, and the
    #: janitor only ever lists and removes twins of its own instance.
    instance: str = Field(default="default", min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

    # transient-failure retries (broker, database, Docker busy)
    retry_attempts: int = 4
    retry_initial_s: float = 0.5
    retry_max_s: float = 8.0

    # exactly one verdict (README "Exactly one verdict")
    #: A worker's claim on a run lasts this long unless renewed (it is, every third of it,
    #: while the worker lives); a killed worker's run is taken over once it runs out.
    stage_lease_s: float = 30.0
    #: A run whose stage was interrupted this many times (its worker died each time) ends in
    #: RunFailed RETRIES_EXHAUSTED instead of being tried again.
    stage_max_attempts: int = 3
    #: On stop, in-flight work may finish for this long; what is still running is then cut
    #: short, its lease handed back and its message left uncommitted for another instance.
    shutdown_grace_s: float = 15.0
    #: A run must have its verdict by readiness_timeout_s + patch.timeout_s + this after its
    #: request arrived; the janitor's watchdog fails it (RUN_DEADLINE_EXCEEDED) otherwise.
    run_deadline_margin_s: float = 600.0

    # janitor
    janitor_interval_s: float = 60.0
    #: A twin of this instance whose run the database does not know is removed once this old.
    janitor_orphan_grace_s: float = 600.0
    #: The janitor also follows the Docker engine's events, to remove a twin no run needs as
    #: soon as it stops or dies rather than at the next sweep.
    janitor_docker_events: bool = True

    def twin_limit(self) -> int:
        from patchtwin.twins.capacity import default_max_twins

        return self.max_twins or default_max_twins()

    # observability (telemetry.py, http.py, logs.py, samplers.py)
    #: where spans go: nowhere, OTLP (OTEL_EXPORTER_OTLP_* variables), the console, or `otel_file`
    otel_exporter: Literal["none", "otlp", "console", "file"] = "none"
    #: the `file` exporter's JSON lines, one span each (default: state_dir/spans.jsonl)
    otel_file: Path | None = None
    #: /healthz /readyz /metrics: unset = the process's own default (8080 for `patchtwin up`,
    #: 8081-8085 for `patchtwin service NAME` in stage order), 0 = any free port (recorded in
    #: state_dir/http/), -1 = no HTTP endpoint
    http_port: int | None = None
    http_host: str = "0.0.0.0"
    log_format: Literal["json", "text"] = "json"
    #: how often twins' CPU/memory and consumer lag are sampled
    metrics_interval_s: float = 10.0

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
