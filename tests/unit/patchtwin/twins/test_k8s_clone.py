"""Cloning a namespace, on real Deployment, StatefulSet, Service, ConfigMap and Secret documents."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from patchtwin.exceptions import CloneFailed
from patchtwin.twins.k8s_clone import plan
from patchtwin.twins.k8s_manifests import RunMeta

META = RunMeta(run_id="r1", owner="patchtwin", created=datetime(2026, 11, 29, tzinfo=UTC), ttl_s=600)
SECRET = "s3cr3t-value"
CLUSTER_META = {"uid": "0b1c", "resourceVersion": "991", "generation": 4, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}], "ownerReferences": [{"kind": "X", "name": "y"}]}


def source() -> dict[str, list[dict[str, Any]]]:
    """As listed from the API server of a live `shop` namespace."""
    web = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "shop", **CLUSTER_META,
                        "annotations": {"deployment.kubernetes.io/revision": "3", "team": "shop"}},
           "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                        "containers": [{"name": "sidecar", "image": "envoy:1"},
                                       {"name": "web", "image": "shop/web:9",
                                        "args": ["--db=db.shop.svc.cluster.local"]}]}}},
           "status": {"readyReplicas": 4}}
    worker = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "worker", "namespace": "shop", **CLUSTER_META},
              "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "worker"}},
                       "template": {"metadata": {"labels": {"app": "worker"}},
                                    "spec": {"serviceAccountName": "worker",
                                             "containers": [{"name": "w", "image": "shop/worker:9"}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", **CLUSTER_META},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.1.2.3", "clusterIPs": ["10.1.2.3"],
                    "loadBalancerIP": "1.2.3.4", "ports": [{"port": 80, "nodePort": 31000}],
                    "selector": {"app": "web"}}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop", **CLUSTER_META},
          "data": {"upstream": "http://api.shop.svc:8080", "other": "api.shopping.svc"}}
    root_ca = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"},
               "data": {"ca.crt": "..."}}
    opaque = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "db", "namespace": "shop", **CLUSTER_META,
                           "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                           json.dumps({"data": {"password": SECRET}})}},
              "data": {"password": base64.b64encode(SECRET.encode()).decode()}}
    pull = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "registry", "namespace": "shop"},
            "data": {".dockerconfigjson": base64.b64encode(json.dumps({"auths": {"r": {"auth": SECRET}}}).encode())
                     .decode()}}
    token = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
             "metadata": {"name": "worker-token", "namespace": "shop"}, "data": {"token": "dG9rZW4="}}
    return {"Deployment": [web, worker], "StatefulSet": [], "Service": [svc], "ConfigMap": [cm, root_ca],
            "Secret": [opaque, pull, token]}


def clone(**kw: Any) -> Any:
    return plan(source(), source="shop", target="pt-run", workload=kw.pop("workload", "Deployment/web"),
                container=kw.pop("container", "web"), meta=META, profile="restricted", **kw)


def test_no_secret_value_is_in_anything_the_clone_creates() -> None:
    result = clone()

    sent = json.dumps(result.objects) + json.dumps(result.twin_template)
    assert SECRET not in sent
    assert base64.b64encode(SECRET.encode()).decode() not in sent
    secrets = {o["metadata"]["name"]: o for o in result.objects if o["kind"] == "Secret"}
    assert sorted(secrets) == ["db", "registry"]  # the service-account token is the cluster's own
    assert list(secrets["db"]["data"]) == ["password"]
    assert base64.b64decode(secrets["db"]["data"]["password"]) == b"patchtwin-placeholder"
    assert json.loads(base64.b64decode(secrets["registry"]["data"][".dockerconfigjson"])) == {"auths": {}}
    assert secrets["registry"]["type"] == "kubernetes.io/dockerconfigjson"
    assert result.placeholder_secrets == ["db", "registry"]


def test_cluster_assigned_metadata_and_status_are_dropped_and_the_run_labels_added() -> None:
    result = clone()

    for obj in result.objects:
        meta = obj["metadata"]
        assert not set(CLUSTER_META) & set(meta), obj["kind"]
        assert meta["namespace"] == "pt-run"
        assert meta["labels"]["patchtwin.io/run"] == META.labels()["patchtwin.io/run"]
        assert "status" not in obj
        assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]


def test_service_loses_its_addresses_and_becomes_cluster_internal() -> None:
    [svc] = [o for o in clone().objects if o["kind"] == "Service"]

    assert svc["spec"] == {"type": "ClusterIP", "ports": [{"port": 80}], "selector": {"app": "web"}}


def test_references_to_the_source_namespace_are_rewritten_and_nothing_else() -> None:
    result = clone()
    [cm] = [o for o in result.objects if o["kind"] == "ConfigMap"]

    assert cm["data"] == {"upstream": "http://api.pt-run.svc:8080", "other": "api.shopping.svc"}
    assert result.twin_template["spec"]["containers"][1]["args"] == ["--db=db.pt-run.svc.cluster.local"]


def test_the_chosen_workload_becomes_the_twin_and_the_others_one_hardened_replica_each() -> None:
    result = clone()

    assert (result.container, result.image) == ("web", "shop/web:9")
    assert [o["metadata"]["name"] for o in result.objects if o["kind"] == "Deployment"] == ["worker"]
    [worker] = [o for o in result.objects if o["kind"] == "Deployment"]
    assert worker["spec"]["replicas"] == 1
    pod_spec = worker["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False and "serviceAccountName" not in pod_spec
    assert pod_spec["containers"][0]["securityContext"]["runAsNonRoot"] is True
    assert result.workloads == [("Deployment", "worker")]
    assert sorted(result.copied) == ["ConfigMap/web", "Deployment/worker", "Service/web"]


def test_statefulset_claims_become_empty_dirs() -> None:
    objects = source()
    objects["StatefulSet"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                               "spec": {"replicas": 3, "serviceName": "db",
                                        "template": {"spec": {"containers": [{"name": "pg", "image": "pg"}]}},
                                        "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}]

    result = plan(objects, source="shop", target="pt-run", workload="StatefulSet/db", container=None, meta=META,
                  profile="baseline")

    assert {"name": "data", "emptyDir": {}} in result.twin_template["spec"]["volumes"]
    assert result.container == "pg"


@pytest.mark.parametrize(("workload", "container", "message"), [
    ("Deployment/api", None, "Deployment/api not found in namespace shop"),
    ("StatefulSet/web", None, "StatefulSet/web not found"),
    ("Deployment/web", "nginx", "has no container 'nginx'"),
])
def test_a_missing_workload_or_container_is_clone_failed(workload: str, container: str | None, message: str) -> None:
    with pytest.raises(CloneFailed, match=message):
        clone(workload=workload, container=container)
