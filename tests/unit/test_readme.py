"""The README's reference tables are the code's own."""

from __future__ import annotations

from pathlib import Path

from schemas.reference import error_table

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_readme_lists_every_error_code_with_its_meaning() -> None:
    start = README.index("<!-- error-table -->") + len("<!-- error-table -->")
    end = README.index("<!-- /error-table -->")
    assert README[start:end].strip() == error_table(), "run `python -m schemas.reference`"
