"""Readiness: what the in-twin program is asked, and how its answer is read."""

from __future__ import annotations

import base64

from patchtwin.twins.readiness import conditions, parse
from schemas.asset import Asset


def test_conditions_cover_services_ports_and_urls() -> None:
    asset = Asset.model_validate({
        "id": "a", "platform": {"os": "debian", "version": "12"},
        "services": ["nginx", {"name": "w", "command": "run it"}],
        "ports": [{"port": 53, "protocol": "udp"}],
        "readiness": [{"type": "port", "port": 80}, {"type": "http", "url": "http://127.0.0.1/", "expect_status": 204}],
    })
    assert conditions(asset) == [
        "svc:nginx:auto:", f"svc:w:command:{base64.b64encode(b'run it').decode()}",
        "port:53:udp", "port:80:tcp", f"http:{base64.b64encode(b'http://127.0.0.1/').decode()}:204",
    ]


def test_answer_ready_with_managers_and_states() -> None:
    answer = parse("mgr\tnginx\tsysv\nready\t1250\nsvc\tnginx\tsysv\t0\t\n")
    assert answer.ready and answer.seconds == 1.25
    assert answer.managers == {"nginx": "sysv"} and answer.services["nginx"].state == "running"


def test_answer_not_ready_says_what_was_missing() -> None:
    missing = base64.b64encode(b"nothing listens on tcp port 9999").decode()
    answer = parse(f"mgr\tnginx\tsysv\nmissing\t{missing}\nsvc\tnginx\tsysv\t0\t\n")
    assert not answer.ready and answer.missing == "nothing listens on tcp port 9999"
