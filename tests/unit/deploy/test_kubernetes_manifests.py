"""deploy/kubernetes/: the RBAC grants exactly what the runtime calls, and the services'
own Pods pass Pod Security `restricted`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from patchtwin.twins.kubernetes import API_USE
from tests.kubernetes.fake_apiserver import pod_security_violations

DEPLOY = Path(__file__).parents[3] / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_rbac_grants_exactly_the_calls_the_runtime_makes() -> None:
    granted = {
        (group, resource, verb)
        for role in documents("rbac.yaml") if role["kind"] in ("ClusterRole", "Role")
        for rule in role["rules"]
        for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
    }

    assert granted == API_USE


def test_secrets_are_readable_only_through_the_per_namespace_clone_binding() -> None:
    roles = {d["metadata"]["name"]: d for d in documents("rbac.yaml") if d["kind"] == "ClusterRole"}
    bindings = [d for d in documents("rbac.yaml") if d["kind"] == "ClusterRoleBinding"]

    def reads_secrets(role: dict[str, Any]) -> bool:
        return any("secrets" in r["resources"] and set(r["verbs"]) & {"get", "list", "watch"} for r in role["rules"])

    assert [name for name, role in roles.items() if reads_secrets(role)] == ["patchtwin-clone-source"]
    assert all(b["roleRef"]["name"] != "patchtwin-clone-source" for b in bindings)


def test_the_services_pods_pass_restricted_and_only_twin_handlers_get_a_token() -> None:
    workloads = [d for d in documents("services.yaml") if d["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 6

    for workload in workloads:
        pod = {"spec": workload["spec"]["template"]["spec"]}
        assert pod_security_violations(pod, "restricted") == [], workload["metadata"]["name"]
        component = workload["metadata"]["name"].removeprefix("patchtwin-")
        has_token = pod["spec"].get("serviceAccountName") == "patchtwin-twins"
        assert has_token == (component in ("provisioner", "executor", "prober", "janitor"))
