"""The objects of a Kubernetes run, as sent: names, labels, Pod Security, network, quota, Pod."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from patchtwin.twins.k8s_manifests import (
    RunMeta,
    namespace_name,
    owner_selector,
    run_objects,
    twin_pod,
)
from patchtwin.twins.runtime import LABEL_EXPIRES, LABEL_RUN, TwinLimits
from tests.kubernetes.fake_apiserver import pod_security_violations, selects

META = RunMeta(run_id="scan-2026:web-01@openssl", owner="patchtwin", created=datetime(2026, 11, 29, tzinfo=UTC),
               ttl_s=3600)
LIMITS = TwinLimits(cpus=1.5, memory_mb=512, pids=256)


def test_namespace_names_are_dns_labels_unique_per_run() -> None:
    long = "x" * 200
    names = [namespace_name("patchtwin-", r) for r in ("Scan:1", "scan:1", "scan-1", long)]
    names.append(namespace_name("patchtwin-", "scan-1", instance="staging"))

    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", n) for n in names)
    assert len(set(names)) == 5


def test_run_labels_are_label_safe_and_the_run_id_rides_in_an_annotation() -> None:
    namespace = run_objects("ns", META, profile="restricted", cpus=1, memory_mb=512, pods=1)[0]
    labels, annotations = namespace["metadata"]["labels"], namespace["metadata"]["annotations"]

    assert all(re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", v) for v in labels.values())
    assert labels["patchtwin.io/expires"] == str(int(datetime(2026, 11, 29, 1, tzinfo=UTC).timestamp()))
    assert annotations[LABEL_RUN] == "scan-2026:web-01@openssl"
    assert annotations[LABEL_EXPIRES] == "2026-11-29T01:00:00+00:00"
    assert selects(owner_selector("patchtwin", "default", META.run_id), labels)
    assert not selects(owner_selector("patchtwin", "default", "another-run"), labels)
    assert not selects(owner_selector("patchtwin", "another-instance"), labels)
    assert not selects(owner_selector("someone-else"), labels)


def test_restricted_run_enforces_restricted_and_a_baseline_run_still_warns_about_it() -> None:
    restricted = run_objects("ns", META, profile="restricted", cpus=1, memory_mb=512, pods=1)[0]
    baseline = run_objects("ns", META, profile="baseline", cpus=1, memory_mb=512, pods=1)[0]

    assert restricted["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert baseline["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert baseline["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"


def test_a_plain_run_denies_all_traffic_and_a_cloned_one_only_allows_its_own_pods_and_dns() -> None:
    plain = [o for o in run_objects("ns", META, profile="restricted", cpus=1, memory_mb=512, pods=1)
             if o["kind"] == "NetworkPolicy"]
    cloned = [o for o in run_objects("ns", META, profile="restricted", cpus=1, memory_mb=512, pods=3, clone=True)
              if o["kind"] == "NetworkPolicy"]

    assert [p["spec"] for p in plain] == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}]
    allow = cloned[1]["spec"]
    assert allow["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert allow["egress"][0] == {"to": [{"podSelector": {}}]}
    assert {p["port"] for p in allow["egress"][1]["ports"]} == {53}


def test_quota_caps_the_run_and_forbids_node_ports_load_balancers_and_claims() -> None:
    [quota] = [o for o in run_objects("ns", META, profile="restricted", cpus=1.5, memory_mb=512, pods=2)
               if o["kind"] == "ResourceQuota"]

    assert quota["spec"]["hard"] == {
        "pods": "2", "requests.cpu": "1500m", "limits.cpu": "1500m", "requests.memory": "512Mi",
        "limits.memory": "512Mi", "services.loadbalancers": "0", "services.nodeports": "0",
        "persistentvolumeclaims": "0",
    }


def test_twin_pod_passes_its_pod_security_level_and_carries_the_asset_resources() -> None:
    for profile in ("restricted", "baseline"):
        pod = twin_pod("ns", META, image="debian:12", limits=LIMITS, profile=profile, scratch_mb=64)

        assert pod_security_violations(pod, profile) == []
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["activeDeadlineSeconds"] == 3600
        assert spec["containers"][0]["resources"] == {"limits": {"cpu": "1500m", "memory": "512Mi"},
                                                      "requests": {"cpu": "1500m", "memory": "512Mi"}}
        assert {"name": "patchtwin-scratch", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]


def test_a_baseline_twin_is_root_and_would_be_refused_under_restricted() -> None:
    pod = twin_pod("ns", META, image="debian:12", limits=LIMITS, profile="baseline")

    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 0
    assert any("runAsNonRoot" in p for p in pod_security_violations(pod, "restricted"))


def test_hardening_a_template_removes_host_access_and_the_service_account() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {
        "serviceAccountName": "web", "hostNetwork": True, "nodeName": "node-1",
        "initContainers": [{"name": "setup", "image": "busybox"}],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}, {"name": "cfg", "configMap": {"name": "c"}}],
        "containers": [{"name": "web", "image": "nginx", "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}, {"name": "cfg", "mountPath": "/c"}]}],
    }}

    pod = twin_pod("ns", META, image="", limits=LIMITS, profile="restricted", template=template)

    spec = pod["spec"]
    assert pod_security_violations(pod, "restricted") == []
    assert not {"serviceAccountName", "hostNetwork", "nodeName", "initContainers"} & set(spec)
    assert [v["name"] for v in spec["volumes"]] == ["cfg", "patchtwin-scratch"]
    assert [m["mountPath"] for m in spec["containers"][0]["volumeMounts"]] == [
        "/c", "/tmp", "/var/tmp", "/opt/patchtwin"]
    assert pod["metadata"]["labels"]["app"] == "web"
