"""The Kubernetes objects of one run, as plain dicts: pure functions, so the exact manifests
sent to a cluster are unit-tested without one.

One namespace per run holds everything (twin Pod, policies, cloned objects): deleting it is
the whole teardown, and its labels are what the janitor lists after a crash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from patchtwin.twins.runtime import LABEL_CREATED, LABEL_EXPIRES, LABEL_INSTANCE, LABEL_OWNER, LABEL_RUN, TwinLimits

Profile = Literal["restricted", "baseline"]

#: Label keys (values must be label-safe, so the run id itself goes in an annotation).
K_MANAGED = "app.kubernetes.io/managed-by"
K_OWNER = "patchtwin.io/owner"
K_RUN = "patchtwin.io/run"
K_EXPIRES = "patchtwin.io/expires"
K_INSTANCE = "patchtwin.io/instance"
K_TWIN = "patchtwin.io/twin"
PSA = "pod-security.kubernetes.io"

#: What a root twin may still do under `baseline` (the Docker twin's set; all allowed by PSA baseline).
BASELINE_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL")
#: Writable places on a read-only root filesystem, all on one size-limited emptyDir.
SCRATCH_MOUNTS = {"/tmp": "tmp", "/var/tmp": "var-tmp", "/opt/patchtwin": "patchtwin"}
DEFAULT_NON_ROOT_UID = 65532
TWIN_CONTAINER = "twin"
TWIN_POD = "twin"


@dataclass(frozen=True)
class RunMeta:
    """Who a run's objects belong to and when they expire."""

    run_id: str
    owner: str
    created: datetime
    ttl_s: int
    instance: str = "default"

    @property
    def expires(self) -> datetime:
        return self.created + timedelta(seconds=self.ttl_s)

    def labels(self) -> dict[str, str]:
        return {
            K_MANAGED: "patchtwin",
            K_OWNER: label_value(self.owner),
            K_INSTANCE: label_value(self.instance),
            K_RUN: run_label(self.run_id),
            K_EXPIRES: str(int(self.expires.timestamp())),
        }

    def annotations(self) -> dict[str, str]:
        return {
            LABEL_RUN: self.run_id,
            LABEL_OWNER: self.owner,
            LABEL_INSTANCE: self.instance,
            LABEL_CREATED: self.created.isoformat(),
            LABEL_EXPIRES: self.expires.isoformat(),
        }


def run_label(run_id: str) -> str:
    """A label-safe, collision-free stand-in for a run id (which may hold ':' or '@')."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:40]


def label_value(value: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.")
    return safe or "patchtwin"


def namespace_name(prefix: str, run_id: str, instance: str = "default") -> str:
    """A valid DNS label (at most 63) unique to the run and the instance."""
    safe = re.sub(r"[^a-z0-9-]", "-", run_id.lower())
    digest = hashlib.sha256(f"{instance}\0{run_id}".encode()).hexdigest()[:8]
    room = 63 - len(prefix) - len(digest) - 1
    middle = re.sub(r"-+", "-", safe)[: max(room, 0)].strip("-")
    return f"{prefix}{middle}-{digest}" if middle else f"{prefix}{digest}"


def owner_selector(owner: str, instance: str = "default", run_id: str | None = None) -> str:
    selector = f"{K_MANAGED}=patchtwin,{K_OWNER}={label_value(owner)},{K_INSTANCE}={label_value(instance)}"
    return selector + (f",{K_RUN}={run_label(run_id)}" if run_id is not None else "")


def namespace(name: str, meta: RunMeta, profile: Profile) -> dict[str, Any]:
    """The run's namespace: our labels, and Pod Security Admission at the profile's level
    (a `baseline` run still warns and audits against `restricted`)."""
    labels = {**meta.labels(), f"{PSA}/enforce": profile, f"{PSA}/enforce-version": "latest",
              f"{PSA}/warn": "restricted", f"{PSA}/audit": "restricted"}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels, "annotations": meta.annotations()}}


def default_deny(namespace_: str, meta: RunMeta) -> dict[str, Any]:
    """No traffic in or out of any Pod of the run, like the Docker twin's `network: none`."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "patchtwin-default-deny", "namespace": namespace_, "labels": meta.labels()},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def allow_within(namespace_: str, meta: RunMeta) -> dict[str, Any]:
    """For a cloned namespace only: its Pods may reach each other (an app and its database)
    and the cluster DNS to find them by Service name; still nothing else in or out."""
    same_namespace: list[dict[str, Any]] = [{"podSelector": {}}]
    dns = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "patchtwin-allow-within", "namespace": namespace_, "labels": meta.labels()},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": same_namespace}], "egress": [{"to": same_namespace}, dns]},
    }


def quota(namespace_: str, meta: RunMeta, *, cpus: float, memory_mb: int, pods: int) -> dict[str, Any]:
    """A ceiling for the whole run (twin and cloned workloads); no LoadBalancer, NodePort or volume claim."""
    hard = {
        "pods": str(pods),
        "requests.cpu": cpu(cpus), "limits.cpu": cpu(cpus),
        "requests.memory": mebi(memory_mb), "limits.memory": mebi(memory_mb),
        "services.loadbalancers": "0", "services.nodeports": "0", "persistentvolumeclaims": "0",
    }
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "patchtwin-quota", "namespace": namespace_, "labels": meta.labels()},
            "spec": {"hard": hard}}


def limit_range(namespace_: str, meta: RunMeta) -> dict[str, Any]:
    """Defaults for cloned containers that name no resources, so the quota admits them."""
    return {
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "patchtwin-limits", "namespace": namespace_, "labels": meta.labels()},
        "spec": {"limits": [{"type": "Container",
                             "default": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                             "defaultRequest": {"cpu": "100m", "memory": "128Mi",
                                                "ephemeral-storage": "64Mi"}}]},
    }


def cpu(cpus: float) -> str:
    return f"{round(cpus * 1000)}m"


def mebi(mb: int) -> str:
    return f"{mb}Mi"


def container_security(profile: Profile, run_as_user: int | None) -> dict[str, Any]:
    """A container securityContext that passes the profile's Pod Security level."""
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if profile == "restricted":
        context.update(
            capabilities={"drop": ["ALL"]},
            readOnlyRootFilesystem=True,
            runAsNonRoot=True,
            runAsUser=run_as_user or DEFAULT_NON_ROOT_UID,
        )
    else:
        context.update(capabilities={"drop": ["ALL"], "add": list(BASELINE_CAPABILITIES)},
                       readOnlyRootFilesystem=False, runAsUser=run_as_user or 0)
    return context


def harden_pod_spec(
    spec: dict[str, Any],
    *,
    profile: Profile,
    run_as_user: int | None,
    runtime_class: str | None,
    deadline_s: int | None,
    scratch_mb: int,
) -> dict[str, Any]:
    """The same hardening for the twin and every cloned Pod template: no service account
    token, no host namespaces, RuntimeDefault seccomp, each container at the profile's level,
    a size-limited scratch emptyDir where a read-only root needs somewhere to write."""
    spec = dict(spec)
    for key in ("serviceAccountName", "serviceAccount", "nodeName", "hostNetwork", "hostPID", "hostIPC"):
        spec.pop(key, None)
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    pod_context = dict(spec.get("securityContext") or {})
    pod_context["seccompProfile"] = {"type": "RuntimeDefault"}
    if profile == "restricted":
        pod_context["runAsNonRoot"] = True
        pod_context.setdefault("fsGroup", run_as_user or DEFAULT_NON_ROOT_UID)
    spec["securityContext"] = pod_context
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    if deadline_s is not None:
        spec["activeDeadlineSeconds"] = deadline_s
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") != "patchtwin-scratch"]
    volumes = [v for v in volumes if "hostPath" not in v]
    volumes.append({"name": "patchtwin-scratch", "emptyDir": {"sizeLimit": mebi(scratch_mb)}})
    spec["volumes"] = volumes
    kept_volumes = {v["name"] for v in volumes}
    containers = []
    for container in spec.get("containers") or []:
        container = dict(container)
        container["securityContext"] = {
            **{k: v for k, v in (container.get("securityContext") or {}).items() if k in ("runAsGroup",)},
            **container_security(profile, run_as_user),
        }
        mounts = [m for m in container.get("volumeMounts") or []
                  if m.get("name") in kept_volumes and m.get("mountPath") not in SCRATCH_MOUNTS]
        mounts += [{"name": "patchtwin-scratch", "mountPath": path, "subPath": sub}
                   for path, sub in SCRATCH_MOUNTS.items()]
        container["volumeMounts"] = mounts
        containers.append(container)
    spec["containers"] = containers
    for key in ("initContainers", "ephemeralContainers"):
        spec.pop(key, None)
    return spec


def twin_pod(
    namespace_: str,
    meta: RunMeta,
    *,
    image: str,
    limits: TwinLimits,
    profile: Profile,
    run_as_user: int | None = None,
    runtime_class: str | None = None,
    scratch_mb: int = 256,
    template: dict[str, Any] | None = None,
    container: str | None = None,
) -> dict[str, Any]:
    """The twin Pod: the asset's image idling (`sleep infinity`) like the Docker twin, or a
    cloned workload's Pod template running its own command. Never restarted, gone at the
    run's deadline (`activeDeadlineSeconds`), Guaranteed QoS from the asset's resources."""
    resources = {"limits": {"cpu": cpu(limits.cpus), "memory": mebi(limits.memory_mb)},
                 "requests": {"cpu": cpu(limits.cpus), "memory": mebi(limits.memory_mb)}}
    template_meta = (template or {}).get("metadata") or {}
    if template is None:
        spec: dict[str, Any] = {"containers": [{
            "name": TWIN_CONTAINER, "image": image, "command": ["sleep", "infinity"],
            "imagePullPolicy": "IfNotPresent"}]}
    else:
        spec = dict(template.get("spec") or {})
        spec["containers"] = [dict(c) for c in spec.get("containers") or []]
    spec["restartPolicy"] = "Never"
    spec["terminationGracePeriodSeconds"] = 5
    spec["hostname"] = TWIN_POD
    spec = harden_pod_spec(spec, profile=profile, run_as_user=run_as_user, runtime_class=runtime_class,
                           deadline_s=meta.ttl_s, scratch_mb=scratch_mb)
    chosen = container or spec["containers"][0]["name"]
    for item in spec["containers"]:
        if item["name"] == chosen:
            item["resources"] = resources
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": TWIN_POD, "namespace": namespace_,
                     "labels": {**(template_meta.get("labels") or {}), **meta.labels(), K_TWIN: "true"},
                     "annotations": meta.annotations()},
        "spec": spec,
    }


def run_objects(
    name: str, meta: RunMeta, *, profile: Profile, cpus: float, memory_mb: int, pods: int, clone: bool = False
) -> list[dict[str, Any]]:
    """Everything a run's namespace needs before any Pod is created, in creation order."""
    return [
        namespace(name, meta, profile),
        default_deny(name, meta),
        *([allow_within(name, meta)] if clone else []),
        quota(name, meta, cpus=cpus, memory_mb=memory_mb, pods=pods),
        limit_range(name, meta),
    ]
