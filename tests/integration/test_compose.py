"""compose.yaml: valid for docker-compose, and wired the way docs/operations.md says.

`docker-compose config -q` proves the file is accepted (schema, depends_on
conditions, no keys 1.29 rejects); the other tests read the YAML and check
the properties that matter: one image for all services, healthchecks, start
order, who holds the Docker socket, Kafka in KRaft mode, Kafka UI wiring.
The last test (marker `compose`) brings it up for real on images built here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from schemas.stages import StageName

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SERVICES = tuple(StageName)
TWIN_TOUCHING = {"provisioner", "executor", "prober", "janitor"}
SOCKET = "/var/run/docker.sock"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a map or a list."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def mounts_socket(service: dict[str, Any]) -> bool:
    for volume in service.get("volumes") or []:
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
        if source == SOCKET:
            return True
    return False


def kafka_listeners(services: dict[str, dict[str, Any]], var: str) -> dict[str, str]:
    """Listener name -> host:port, from KAFKA_LISTENERS or KAFKA_ADVERTISED_LISTENERS."""
    out = {}
    for entry in env(services["kafka"])[var].split(","):
        name, address = entry.split("://", 1)
        out[name] = address
    return out


def test_docker_compose_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_no_keys_that_debian_compose_rejects(compose: dict[str, Any]) -> None:
    assert "name" not in compose


def test_the_five_services_share_one_build(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"services missing: {missing}"
    builds = {yaml.safe_dump(services[name].get("build"), sort_keys=True) for name in SERVICES}
    images = {services[name].get("image") for name in SERVICES}
    assert len(builds) == 1 and services["provisioner"].get("build"), builds
    assert len(images) == 1, images
    for name in SERVICES:
        assert services[name]["command"] == ["service", name]


def test_services_can_scale(services: dict[str, dict[str, Any]]) -> None:
    # `--scale` fails on a fixed container name or a fixed host port.
    for name in SERVICES:
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], name


def test_every_service_has_a_healthz_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name in SERVICES:
        check = services[name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        test = check["test"]
        command = " ".join(test) if isinstance(test, list) else test
        assert ":8080/healthz" in command, name
        assert "curl" not in command, f"{name}: the image has no curl"
        assert not check.get("disable"), name
    for infra in ("kafka", "postgres"):
        assert services[infra].get("healthcheck"), infra


def test_init_runs_once_before_the_services(services: dict[str, dict[str, Any]]) -> None:
    init = services["init"]
    assert init["command"] == ["init"]
    assert init.get("build") == services["provisioner"]["build"]
    assert init.get("restart", "no") == "no"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICES:
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends["init"]["condition"] == "service_completed_successfully", name
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_only_twin_touching_services_hold_the_docker_socket(
    services: dict[str, dict[str, Any]],
) -> None:
    holders = {name for name, service in services.items() if mounts_socket(service)}
    assert holders == TWIN_TOUCHING
    assert services["analyzer"].get("user") in (None, "patchtwin")


def test_services_point_at_the_compose_stack(services: dict[str, dict[str, Any]]) -> None:
    internal = kafka_listeners(services, "KAFKA_ADVERTISED_LISTENERS")["PLAINTEXT"]
    for name in (*SERVICES, "init"):
        variables = env(services[name])
        assert variables["KAFKA_BOOTSTRAP_SERVERS"] == internal, name
        db = urlsplit(variables["DATABASE_URL"])
        assert db.scheme == "postgresql" and db.hostname == "postgres", name
        assert variables["PATCHTWIN_OTEL_EXPORTER"] in {"otlp", "console", "none"}, name
        assert urlsplit(variables["OTEL_EXPORTER_OTLP_ENDPOINT"]).hostname == "jaeger", name


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    variables = env(kafka)
    assert kafka["image"] == "apache/kafka:3.9.0"
    assert set(variables["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in variables
    assert not any("zookeeper" in name for name in services)
    # The controller quorum is this node, on the controller listener's port.
    controller = variables["KAFKA_CONTROLLER_LISTENER_NAMES"]
    port = kafka_listeners(services, "KAFKA_LISTENERS")[controller].rsplit(":", 1)[1]
    assert (
        variables["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{variables['KAFKA_NODE_ID']}@kafka:{port}"
    )
    # Containers reach the broker by its service name.
    assert kafka_listeners(services, "KAFKA_ADVERTISED_LISTENERS")["PLAINTEXT"].startswith("kafka:")


def test_kafka_ui_points_at_the_kafka_service(services: dict[str, dict[str, Any]]) -> None:
    ui = services["kafka-ui"]
    assert ui["image"].startswith("ghcr.io/kafbat/kafka-ui")
    bootstrap = env(ui)["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"]
    assert bootstrap in kafka_listeners(services, "KAFKA_ADVERTISED_LISTENERS").values()
    assert bootstrap.split(":")[0] == "kafka"
    assert ui["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_jaeger_accepts_otlp(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one")
    assert env(jaeger).get("COLLECTOR_OTLP_ENABLED") == "true"
    endpoint = urlsplit(env(services["analyzer"])["OTEL_EXPORTER_OTLP_ENDPOINT"])
    published = {str(port).split(":")[-1].split()[0] for port in jaeger.get("ports", [])}
    assert str(endpoint.port) in published


# --- compose.yaml up for real, on the images built here (deploy/images/compose.local.yaml) ---

LOCAL = ROOT / "deploy" / "images" / "compose.local.yaml"


def _compose(binary: str, *args: str, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run([binary, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr[-3000:]}"
    return result.stdout


def _local_stack(binary: str, scratch: Path, env: dict[str, str], instance: str) -> Path:
    """compose.yaml with the local override, as one file: the images already built, no host
    ports (so it never collides with what else runs on this host), its own instance."""
    merged = yaml.safe_load(_compose(binary, "-f", str(COMPOSE), "-f", str(LOCAL), "config", env=env))
    for service in merged["services"].values():
        service.pop("ports", None)
        service.pop("build", None)
        if "PATCHTWIN_HTTP_PORT" in service.get("environment", {}):
            service["environment"]["PATCHTWIN_INSTANCE"] = instance
    path = scratch / "compose.yaml"
    path.write_text(yaml.safe_dump(merged))
    return path


def _healthz(binary: str, stack: list[str], name: str, env: dict[str, str]) -> dict[str, Any] | None:
    """The service's /healthz body as seen inside its container, or None while it does not answer."""
    probe = ("import urllib.request; "
             "print(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3).read().decode())")
    result = subprocess.run([binary, *stack, "exec", "-T", name, "python", "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    return yaml.safe_load(result.stdout) if result.returncode == 0 else None


@pytest.mark.compose
def test_compose_comes_up_on_local_images_and_every_service_answers_healthz(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    from tests.containers import app_image, broker_image, postgres_image

    tag = uuid.uuid4().hex[:10]
    env = {**os.environ, "PATCHTWIN_BROKER_IMAGE": broker_image(), "PATCHTWIN_POSTGRES_IMAGE": postgres_image(),
           "PATCHTWIN_APP_IMAGE": app_image()}
    stack = ["-p", f"patchtwin-compose-{tag}", "-f", str(_local_stack(binary, tmp_path, env, f"compose-{tag}"))]
    try:
        _compose(binary, *stack, "up", "-d", "--no-build", env=env)
        answers: dict[str, Any] = {}
        deadline = time.monotonic() + 180
        while set(answers) != set(SERVICES) and time.monotonic() < deadline:
            for name in set(SERVICES) - set(answers):
                if (body := _healthz(binary, stack, name, env)) is not None:
                    answers[name] = body
            time.sleep(2)
        logs = "" if set(answers) == set(SERVICES) else _compose(binary, *stack, "logs", "--tail", "30", env=env)
        assert set(answers) == set(SERVICES), logs[-6000:]
        for service, body in answers.items():
            assert body == {"status": "ok", "services": [service]}, service
    finally:
        _compose(binary, *stack, "down", "-v", "--remove-orphans", "-t", "10", env=env)
