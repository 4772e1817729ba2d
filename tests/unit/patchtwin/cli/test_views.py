"""The terminal views name the run, its status and the check that regressed."""

from __future__ import annotations

from rich.console import Console

from patchtwin.cli.views import print_verdict, show_verdict
from tests.unit.patchtwin.test_reports import failed_verdict


def test_both_views_print_the_status_the_confidence_and_the_regressed_check() -> None:
    verdict = failed_verdict()
    regressed = next(check.name for check in verdict.checks if check.classification.value == "regression")
    for view in (print_verdict, show_verdict):
        console = Console(record=True, width=200)
        view(console, verdict)
        text = console.export_text()
        assert f"{verdict.run_id}: FAILED (confidence {verdict.confidence:g})" in text
        assert regressed in text and "CHECK_REGRESSED" in text
