"""The command line as a person uses it: `patchtwin up` in one terminal, `submit` in another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.clients import new_run_id, nginx_request
from tests.integration.test_pipeline import BREAKING, GOOD

PATCHTWIN = [sys.executable, "-m", "patchtwin"]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("state")
    env = {**os.environ, "PATCHTWIN_STATE_DIR": str(state)}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen([*PATCHTWIN, "up"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (state / "endpoints.json").exists():
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "patchtwin up did not come up"
        time.sleep(0.2)
    try:
        yield env
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not (state / "endpoints.json").exists()


def _submit(env: dict[str, str], path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PATCHTWIN, "submit", str(path), "--wait", *extra], env=env,
                          capture_output=True, text=True, timeout=180)


def test_submit_wait_exits_0_for_a_passed_verdict_and_prints_it_as_json(
    up: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(nginx_request(new_run_id("cli"), GOOD,
                                                 checks=[{"type": "port", "port": 80}])))

    done = _submit(up, path, "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout[done.stdout.index("{"):])
    assert verdict["status"] == "passed"


def test_submit_wait_exits_1_for_a_failed_verdict(up: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(nginx_request(new_run_id("cli"), BREAKING)))

    done = _submit(up, path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "CHECK_REGRESSED" in done.stdout


def test_submit_of_an_unreadable_file_exits_2_with_a_code(
    up: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "request.yaml"
    path.write_text("- just\n- a list\n")

    done = _submit(up, path)

    assert done.returncode == 2
    assert "INVALID_REQUEST" in done.stderr


def test_up_on_an_engine_that_does_not_answer_refuses_and_starts_no_local_one(tmp_path: Path) -> None:
    """`PATCHTWIN_DOCKER_URL` names the engine: one that does not answer is an error that says
    which, never a reason to start the local dockerd in its place."""
    env = {**os.environ, "PATCHTWIN_STATE_DIR": str(tmp_path),
           "PATCHTWIN_DOCKER_URL": f"unix://{tmp_path}/no-engine.sock"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    finished = subprocess.run([*PATCHTWIN, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert f"no Docker engine answers at unix://{tmp_path}/no-engine.sock" in finished.stderr
