"""All configuration as one typed object, read from the environment (PATCHTWIN_*).

Every field's description is the configuration reference: `python -m patchtwin.cli.docs`
writes docs/configuration.md from them."""

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
        description="An Apache Kafka cluster instead of the embedded broker (none: the embedded one).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PATCHTWIN_DATABASE_URL"),
        description="A PostgreSQL database instead of the embedded one; migrations are applied on start.",
    )
    topic_prefix: str = Field(default="", description="Prefix for every topic name.")
    state_dir: Path = Field(
        default=Path.home() / ".patchtwin",
        description="Embedded broker and database data, image build locks, `endpoints.json` while "
        "`patchtwin up` runs.",
    )

    # twins
    docker_url: str | None = Field(default=None, description="Another Docker engine (none: the local socket).")
    twin_cpus: float = Field(default=2.0, description="A twin's CPUs, unless the asset says otherwise.")
    twin_memory_mb: int = Field(default=4096, description="A twin's memory (and memory + swap), MiB.")
    twin_pids: int = Field(default=1024, description="A twin's process limit.")
    readiness_timeout_s: float = Field(
        default=60.0, description="How long the asset's services may take to come up (else `TWIN_NOT_READY`)."
    )
    build_missing_bases: bool = Field(
        default=True,
        description="Build a Debian-family base with debootstrap when no registry has it (about 40 s, once).",
    )
    image_pull_timeout_s: float = Field(
        default=60.0, description="How long a pull of a public base image may take."
    )
    asset_build_timeout_s: float = Field(
        default=900.0,
        description="How long building an asset's image (base + pinned packages + files) may take.",
    )
    snapshot_roots: list[str] = Field(
        default_factory=lambda: ["/etc"],
        description="Folders whose files are hashed in every system-state snapshot (JSON list).",
    )
    snapshot_max_files: int = Field(
        default=5000, description="At most this many files hashed per snapshot; beyond, `files_truncated` is set."
    )
    snapshot_timeout_s: float = Field(default=60.0, description="How long one snapshot may take.")
    max_twins: int = Field(
        default=0,
        description="Twins alive at once across the provisioner's workers; 0 picks 4 per core, at most one per "
        "512 MiB of memory, at least 2 (`patchtwin.twins.capacity.default_max_twins`; 8 on 2 cores and 24 GB). "
        "More requests wait in Kafka (back-pressure), never fail.",
    )
    patch_output_cap_bytes: int = Field(
        default=1024 * 1024,
        description="Per stream: what is kept of the patch's stdout and of its stderr (head and tail), "
        "in the `patch_runs` table.",
    )
    patch_output_event_bytes: int = Field(
        default=64 * 1024,
        description="Per stream: how much of that the events (and the verdict) carry; all of it is in "
        "the `patch_runs` table.",
    )
    patch_kill_grace_s: float = Field(
        default=5.0,
        description="After the patch's deadline, how long until the exec is abandoned and the twin stopped.",
    )
    artifact_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Artifacts of one patch, in all; URLs are fetched by the executor, never by the twin.",
    )
    artifact_fetch_timeout_s: float = Field(default=60.0, description="Deadline of one artifact URL fetch.")
    package_fetch_timeout_s: float = Field(
        default=300.0, description="How long the helper container may take to download a patch's packages."
    )
    package_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        description="The `.deb` files one patch's `packages` download, in all (a kernel with its modules is "
        "about 100 MB); more ends the run with `PATCH_INPUT_UNAVAILABLE`.",
    )
    # confinement of every twin (docs/isolation.md); an asset may relax some, never these
    twin_runtime: str | None = Field(
        default=None,
        description="OCI runtime of every twin, one the engine knows, e.g. `runsc` (gVisor) where installed "
        "(none: the engine's default, runc).",
    )
    twin_nofile: int = Field(default=4096, ge=64, description="Open files per twin process (`nofile`).")
    twin_fsize_mb: int = Field(
        default=1024, ge=1, description="Largest file a twin process may write (`fsize`), MiB."
    )
    twin_tmpfs_mb: int = Field(default=64, ge=1, description="Size of a twin's `/tmp` and `/dev/shm`, MiB.")
    twin_log_max_mb: int = Field(default=1, ge=1, description="Cap of a twin's container log, MiB.")
    runtimes: list[Literal["docker", "kubernetes"]] = Field(
        default=["docker"],
        description='The runtimes this process can use (JSON list: `["docker","kubernetes"]`).',
    )
    default_runtime: Literal["docker", "kubernetes"] = Field(
        default="docker", description="The runtime of a request without `asset.runtime`."
    )

    # kubernetes twins (docs/runtimes.md)
    k8s_in_cluster: bool = Field(
        default=False, description="Use the Pod's service account (else a kubeconfig)."
    )
    k8s_kubeconfig: str | None = Field(default=None, description="Which kubeconfig (none: `~/.kube/config`).")
    k8s_context: str | None = Field(default=None, description="Which kubeconfig context (none: the current one).")
    k8s_namespace_prefix: str = Field(default="patchtwin-", description="Name prefix of run namespaces.")
    k8s_runtime_class: str | None = Field(
        default=None, description="RuntimeClass of every Kubernetes twin (e.g. gVisor)."
    )
    k8s_ready_timeout_s: float = Field(
        default=120.0, description="How long the twin Pod and cloned workloads may take to be ready."
    )
    k8s_scratch_mb: int = Field(default=256, description="Size limit of the twin Pod's scratch emptyDir, MiB.")
    k8s_clone_cpus: float = Field(
        default=4.0,
        description="CPUs in a cloned namespace's quota for the copied workloads, on top of the twin's own.",
    )
    k8s_clone_memory_mb: int = Field(
        default=8192,
        description="Memory (MiB) in a cloned namespace's quota for the copied workloads, on top of the "
        "twin's own.",
    )

    # bus
    max_message_bytes: int = Field(
        default=1024 * 1024, description="Larger messages are refused (`MESSAGE_TOO_LARGE`)."
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        description="Consumer group session timeout. Apache Kafka refuses less than 6 s by default; the "
        "embedded broker takes 2 s, which makes joins (about half of it) and failover after a crash quicker.",
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3_000, description="How often a consumer tells its group it lives."
    )
    owner: str = Field(
        default="patchtwin",
        description="The owner label of every twin (`io.patchtwin.owner` on Docker, `patchtwin.io/owner` on "
        "Kubernetes namespaces); "
        "a janitor only sweeps its own owner's twins.",
    )
    stage_workers: int = Field(
        default=4,
        description="Messages a provisioner/executor/prober works on at once (one consumer per worker, "
        "each keeping its partitions in order, so at most the topic's partitions, 4, are useful); the "
        "analyzer and janitor take one.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=20,
        description="How long the broker may hold a fetch for lack of data. The default of Apache Kafka "
        "clients (500 ms) became most of each hop's latency; 20 ms costs a few idle fetches.",
    )
    instance: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Names this deployment on a shared Docker engine: twins are labelled with it "
        "(`io.patchtwin.instance`), and the janitor only ever lists and removes twins of its own instance.",
    )

    # transient-failure retries (broker, database, Docker busy)
    retry_attempts: int = Field(default=4, description="Tries of an operation that failed transiently.")
    retry_initial_s: float = Field(default=0.5, description="The first wait between retries (then doubled, jittered).")
    retry_max_s: float = Field(default=8.0, description="The longest wait between retries.")

    # exactly one verdict (docs/operations.md)
    stage_lease_s: float = Field(
        default=30.0,
        description="A worker's claim on a run lasts this long unless renewed (it is, every third of it, "
        "while the worker lives); a killed worker's run is taken over once it runs out.",
    )
    stage_max_attempts: int = Field(
        default=3,
        description="A run whose stage was interrupted this many times (its worker died each time) ends in "
        "RunFailed `RETRIES_EXHAUSTED` instead of being tried again.",
    )
    shutdown_grace_s: float = Field(
        default=15.0,
        description="On stop, in-flight work may finish for this long; what is still running is then cut "
        "short, its lease handed back and its message left uncommitted for another instance.",
    )
    run_deadline_margin_s: float = Field(
        default=600.0,
        description="A run must have its verdict by `readiness_timeout_s + patch.timeout_s +` this after its "
        "request arrived; the janitor's watchdog fails it (`RUN_DEADLINE_EXCEEDED`) otherwise.",
    )

    # janitor
    janitor_interval_s: float = Field(default=60.0, description="How often the janitor sweeps.")
    janitor_orphan_grace_s: float = Field(
        default=600.0,
        description="A twin of this instance whose run the database does not know is removed once this old.",
    )
    janitor_docker_events: bool = Field(
        default=True,
        description="The janitor also follows the Docker engine's events, to remove a twin no run needs as "
        "soon as it stops or dies rather than at the next sweep.",
    )

    def twin_limit(self) -> int:
        from patchtwin.twins.capacity import default_max_twins

        return self.max_twins or default_max_twins()

    # observability (telemetry.py, http.py, logs.py, samplers.py)
    otel_exporter: Literal["none", "otlp", "console", "file"] = Field(
        default="none",
        description="Where spans go: nowhere, OTLP (the standard `OTEL_EXPORTER_OTLP_*` variables, "
        "HTTP/protobuf), the console, or `otel_file` (one JSON line per span).",
    )
    otel_file: Path | None = Field(
        default=None,
        description="The `file` exporter's JSON lines, appended to (none: `STATE_DIR/spans.jsonl`).",
    )
    http_port: int | None = Field(
        default=None,
        description="Port of `/healthz`, `/readyz` and `/metrics`: unset = the process's own default (8080 for "
        "`patchtwin up`, 8081-8085 for `patchtwin service NAME` in stage order), 0 = any free port (recorded in "
        "`STATE_DIR/http/`), -1 = no HTTP endpoint.",
    )
    http_host: str = Field(default="0.0.0.0", description="Address the HTTP endpoints listen on.")
    log_format: Literal["json", "text"] = Field(
        default="json", description="`json` (one object per line) or `text` (for people)."
    )
    metrics_interval_s: float = Field(
        default=10.0, description="How often twins' CPU/memory and consumer lag are sampled."
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
