"""Names vulture cannot see used (`make lint` runs vulture with this file; see [tool.vulture]).

Each entry says why it is not dead. Anything else vulture reports is dead code: remove it."""

from patchtwin.core.store import Ledger
from patchtwin.observability.telemetry import RunIdMiddleware
from patchtwin.twins import docker, images, kubernetes, memory
from patchtwin.twins.platforms import PackageManager
from schemas.events import Event, Isolation, PackageChange, VerdictIssued
from schemas.state import Provisioning, StateDiff, SystemState

# Removed by other engineers working on this restructure in parallel (issue 17); drop these
# lines when their changes land.
Ledger.mark_only

# FastStream calls a middleware's consume_scope.
RunIdMiddleware.consume_scope

# tarfile reads the attributes set on a TarInfo.
docker.tarfile.TarInfo.mtime

# Read only by tests: the RBAC test compares the ClusterRole with it, the integration and chaos
# tests build their twins on base_ref, the platform tests call one package's version.
kubernetes.API_USE
# The test double of a twin runtime: the runtime contract suite and the router tests use it.
memory.MemoryRuntime
# Moving an image between engines: the second-engine test loads the base image with them.
docker.DockerRuntime.save_image
docker.DockerRuntime.load_image
images.base_ref
PackageManager.version_command
PackageManager.parse_version
StateDiff.empty


# Fields of the wire format and of what the events carry: serialized, read by consumers.
Event.schema_version
Isolation.seccomp
PackageChange.requested
VerdictIssued.confidence_inputs
SystemState.taken_at
SystemState.files_truncated
Provisioning.base_image
Provisioning.image_built
Provisioning.time_to_ready_s
StateDiff.ports_opened
StateDiff.ports_closed
StateDiff.files_added
StateDiff.files_removed
StateDiff.files_changed
StateDiff.users_added
StateDiff.users_removed
StateDiff.groups_added
StateDiff.groups_removed
StateDiff.processes_started
StateDiff.processes_stopped
