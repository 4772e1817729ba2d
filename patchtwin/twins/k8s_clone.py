"""Cloning a live namespace into a run's namespace, as pure transformations of the source
objects (read as JSON dicts), so what is copied, dropped and rewritten is unit-tested on
real documents without a cluster.

* Deployments, StatefulSets, Services and ConfigMaps are copied with cluster-assigned
  metadata and status removed and references to the source namespace rewritten.
* Secrets are never copied: each becomes a Secret with the same name, type and keys and
  placeholder values. No value read from a source Secret is ever put in an object we send.
* The chosen workload becomes the twin Pod (its Pod template, hardened); the others are
  copied with one replica each, hardened the same way.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any

from patchtwin.exceptions import CloneFailed
from patchtwin.twins.k8s_manifests import Profile, RunMeta, harden_pod_spec

PLACEHOLDER = b"patchtwin-placeholder"
#: Values a Secret type's validation insists on; anything else gets PLACEHOLDER.
TYPED_PLACEHOLDERS = {
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"): json.dumps({"auths": {}}).encode(),
    ("kubernetes.io/dockercfg", ".dockercfg"): b"{}",
}
#: Secrets the cluster itself makes; a copy would mean nothing (and could not be created).
SKIPPED_SECRET_TYPES = ("kubernetes.io/service-account-token",)
#: Metadata only the cluster sets, or that ties an object to its source.
CLUSTER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                    "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers",
                    "generateName")
CLUSTER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")


@dataclass
class ClonePlan:
    """What to create in the run's namespace, and what the twin Pod is made from."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    twin_template: dict[str, Any] = field(default_factory=dict)
    container: str = ""
    image: str = ""
    copied: list[str] = field(default_factory=list)
    placeholder_secrets: list[str] = field(default_factory=list)
    workloads: list[tuple[str, str]] = field(default_factory=list)


def rewrite(value: Any, source: str, target: str) -> Any:
    """Service DNS names of the source namespace, wherever they appear in strings, now name
    the run's namespace (`db.shop.svc` -> `db.<run ns>.svc`, also `.svc.cluster.local`)."""
    if isinstance(value, str):
        return value.replace(f".{source}.svc", f".{target}.svc")
    if isinstance(value, list):
        return [rewrite(item, source, target) for item in value]
    if isinstance(value, dict):
        return {key: rewrite(item, source, target) for key, item in value.items()}
    return value


def clean_metadata(obj: dict[str, Any], target: str, meta: RunMeta) -> dict[str, Any]:
    """Keeps name, labels and the object's own annotations; drops what the cluster assigned;
    adds the run's labels and annotations so the copy is known to be ours."""
    source_meta = obj.get("metadata") or {}
    kept = {k: v for k, v in source_meta.items() if k not in CLUSTER_METADATA}
    annotations = {k: v for k, v in (kept.get("annotations") or {}).items() if k not in CLUSTER_ANNOTATIONS}
    kept.update(
        namespace=target,
        labels={**(kept.get("labels") or {}), **meta.labels()},
        annotations={**annotations, **meta.annotations()},
    )
    return kept


def _base(obj: dict[str, Any], kind: str, api_version: str, target: str, meta: RunMeta) -> dict[str, Any]:
    return {"apiVersion": obj.get("apiVersion") or api_version, "kind": kind,
            "metadata": clean_metadata(obj, target, meta)}


def clone_service(svc: dict[str, Any], source: str, target: str, meta: RunMeta) -> dict[str, Any]:
    """A ClusterIP Service selecting the same labels; the cluster assigns a new address."""
    spec = copy.deepcopy(svc.get("spec") or {})
    for key in ("clusterIP", "clusterIPs", "externalIPs", "loadBalancerIP", "loadBalancerSourceRanges",
                "healthCheckNodePort", "externalTrafficPolicy", "loadBalancerClass", "allocateLoadBalancerNodePorts"):
        spec.pop(key, None)
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        spec["type"] = "ClusterIP"
    for port in spec.get("ports") or []:
        port.pop("nodePort", None)
    if spec.get("type") == "ExternalName":
        spec["externalName"] = rewrite(spec.get("externalName", ""), source, target)
    return {**_base(svc, "Service", "v1", target, meta), "spec": spec}


def clone_configmap(cm: dict[str, Any], source: str, target: str, meta: RunMeta) -> dict[str, Any]:
    out = _base(cm, "ConfigMap", "v1", target, meta)
    if cm.get("data") is not None:
        out["data"] = rewrite(copy.deepcopy(cm["data"]), source, target)
    if cm.get("binaryData") is not None:
        out["binaryData"] = copy.deepcopy(cm["binaryData"])
    return out


def placeholder_secret(secret: dict[str, Any], target: str, meta: RunMeta) -> dict[str, Any]:
    """Same name, type and keys; every value a placeholder. Only the *keys* of the source are
    read: Pods that mount or reference the Secret start, and nothing secret is copied."""
    kind = secret.get("type") or "Opaque"
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    data = {key: base64.b64encode(TYPED_PLACEHOLDERS.get((kind, key), PLACEHOLDER)).decode() for key in keys}
    source_meta = clean_metadata(secret, target, meta)
    source_meta["annotations"] = {**meta.annotations(), "patchtwin.io/placeholder": "true"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": source_meta, "type": kind, "data": data}


def clone_workload(
    obj: dict[str, Any], source: str, target: str, meta: RunMeta, *, profile: Profile,
    run_as_user: int | None, runtime_class: str | None, scratch_mb: int,
) -> dict[str, Any]:
    """A Deployment or StatefulSet with one replica, its Pod template hardened like the twin
    and its volume claims turned into emptyDirs (no storage is copied)."""
    kind = obj["kind"]
    spec = copy.deepcopy(obj.get("spec") or {})
    spec["replicas"] = 1
    template = spec.get("template") or {}
    pod_spec = rewrite(template.get("spec") or {}, source, target)
    claims = spec.pop("volumeClaimTemplates", None) or []
    if claims:
        pod_spec.setdefault("volumes", [])
        pod_spec["volumes"] += [{"name": c["metadata"]["name"], "emptyDir": {}} for c in claims]
    template["spec"] = harden_pod_spec(pod_spec, profile=profile, run_as_user=run_as_user,
                                       runtime_class=runtime_class, deadline_s=None, scratch_mb=scratch_mb)
    template["metadata"] = {k: v for k, v in (template.get("metadata") or {}).items()
                            if k not in CLUSTER_METADATA}
    spec["template"] = template
    return {**_base(obj, kind, "apps/v1", target, meta), "spec": spec}


def plan(
    source_objects: dict[str, list[dict[str, Any]]],
    *,
    source: str,
    target: str,
    workload: str,
    container: str | None,
    meta: RunMeta,
    profile: Profile,
    run_as_user: int | None = None,
    runtime_class: str | None = None,
    scratch_mb: int = 256,
) -> ClonePlan:
    """The whole clone, from the source namespace's objects by kind (as listed from the API)."""
    kind, _, name = workload.partition("/")
    chosen = next((o for o in source_objects.get(kind, []) if (o.get("metadata") or {}).get("name") == name), None)
    if chosen is None:
        raise CloneFailed(f"{workload} not found in namespace {source}")
    result = ClonePlan()
    for cm in source_objects.get("ConfigMap", []):
        if cm["metadata"]["name"] == "kube-root-ca.crt":
            continue  # every namespace gets its own
        result.objects.append(clone_configmap(cm, source, target, meta))
    for secret in source_objects.get("Secret", []):
        if (secret.get("type") or "Opaque") in SKIPPED_SECRET_TYPES:
            continue
        result.objects.append(placeholder_secret(secret, target, meta))
        result.placeholder_secrets.append(secret["metadata"]["name"])
    for svc in source_objects.get("Service", []):
        result.objects.append(clone_service(svc, source, target, meta))
    for other_kind in ("Deployment", "StatefulSet"):
        for obj in source_objects.get(other_kind, []):
            if obj is chosen:
                continue
            obj = {**obj, "kind": other_kind}
            result.objects.append(clone_workload(obj, source, target, meta, profile=profile,
                                                 run_as_user=run_as_user, runtime_class=runtime_class,
                                                 scratch_mb=scratch_mb))
            result.workloads.append((other_kind, obj["metadata"]["name"]))
    template = rewrite(copy.deepcopy((chosen.get("spec") or {}).get("template") or {}), source, target)
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        raise CloneFailed(f"{workload} in {source} has no containers")
    picked = next((c for c in containers if c.get("name") == container), None) if container else containers[0]
    if picked is None:
        raise CloneFailed(f"{workload} in {source} has no container {container!r}")
    claims = ((chosen.get("spec") or {}).get("volumeClaimTemplates")) or []
    if claims:
        template["spec"].setdefault("volumes", [])
        template["spec"]["volumes"] += [{"name": c["metadata"]["name"], "emptyDir": {}} for c in claims]
    result.twin_template = template
    result.container = picked["name"]
    result.image = picked.get("image", "")
    result.copied = [f"{o['kind']}/{o['metadata']['name']}" for o in result.objects if o["kind"] != "Secret"]
    return result
