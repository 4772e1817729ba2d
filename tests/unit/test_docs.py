"""The reference tables in README.md and docs/ are the code's own: generated, and compared here."""

from __future__ import annotations

import pytest

from patchtwin.cli.docs import ROOT, TABLES, between, config_table, error_table, handler_table
from patchtwin.settings import Settings
from schemas.codes import Code
from schemas.topics import Topic

GENERATED = [(name, marker, render) for name, tables in TABLES.items() for marker, render in tables.items()]


@pytest.mark.parametrize(("name", "marker", "render"), GENERATED, ids=[f"{n}:{m}" for n, m, _ in GENERATED])
def test_a_committed_table_is_what_the_code_generates(name: str, marker: str, render: object) -> None:
    text = (ROOT / name).read_text()
    start, end = between(text, marker)
    assert callable(render)
    assert text[start:end].strip() == render(), "run `python -m patchtwin.cli.docs`"


def test_every_setting_says_what_it_is_for() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert not undescribed


@pytest.mark.parametrize("variable", ["KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "PATCHTWIN_KAFKA_SESSION_TIMEOUT_MS",
                                      "PATCHTWIN_KAFKA_HEARTBEAT_INTERVAL_MS", "PATCHTWIN_OWNER"])
def test_the_configuration_table_names_the_variables_people_set(variable: str) -> None:
    assert f"`{variable}`" in config_table()


def test_the_error_table_has_one_row_per_code() -> None:
    rows = error_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [code.value for code in Code]


def test_every_topic_a_service_consumes_has_its_handler_in_the_table() -> None:
    consumed = {Topic.TWIN_REQUESTED, Topic.TWIN_READY, Topic.PATCH_APPLIED, Topic.CHECKS_COMPLETED,
                Topic.RUN_FAILED, Topic.VERDICT_ISSUED}
    table = handler_table()
    assert all(f"`{topic.value}`" in table for topic in consumed)
    assert "`services/provisioner/router.py` `on_twin_requested`" in table
