"""Every service manager's answer to `status` reads as one of the same four states."""

from __future__ import annotations

import pytest

from patchtwin.twins.service_states import service_state


@pytest.mark.parametrize(
    ("manager", "code", "output", "state"),
    [
        ("systemd", 0, "active\n", "running"),
        ("systemd", 3, "inactive\n", "stopped"),
        ("systemd", 3, "failed\n", "failed"),
        ("systemd", 3, "activating\n", "unknown"),
        ("sysv", 0, "nginx is running.", "running"),
        ("sysv", 3, "nginx is not running ... failed!", "stopped"),
        ("sysv", 1, "dead but pid file exists", "failed"),
        ("sysv", 4, "", "unknown"),
        ("command", 0, "", "running"),
        ("command", 1, "exited 2", "failed"),
        ("command", 3, "", "stopped"),
        ("none", 4, "", "unknown"),
    ],
)
def test_every_manager_answers_in_the_same_four_states(manager: str, code: int, output: str, state: str) -> None:
    assert service_state(manager, code, output).state == state
