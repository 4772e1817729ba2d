"""Writes the reference tables of docs/ and README.md from the code, so they cannot drift.

`python -m patchtwin.cli.docs` rewrites each table between its `<!-- name -->` and
`<!-- /name -->` markers; tests/unit/test_docs.py fails when a committed table differs."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from patchtwin.settings import Settings
from schemas.codes import MEANING, RETRY_MAY_HELP, Code
from schemas.stages import StageName
from schemas.topics import Topic

ROOT = Path(__file__).resolve().parents[2]


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, in the order pydantic tries them."""
    if isinstance(field.validation_alias, AliasChoices):
        return [str(choice) for choice in field.validation_alias.choices]
    return [f"PATCHTWIN_{name.upper()}"]


def type_text(annotation: Any) -> str:
    """A field's type as written in settings.py (`int`, `str | None`, `list[Literal[...]]`)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("pathlib.", "")


def default_text(field: FieldInfo) -> str:
    """The default as one would write it in the environment; the home folder as `~`."""
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, Path):
        return f"`{str(value).replace(str(Path.home()), '~', 1)}`"
    if isinstance(value, bool | list):
        return f"`{json.dumps(value)}`"
    return f"`{value}`" if value != "" else "empty"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a `|` would end the cell, in code spans too)."""
    return text.replace("|", "\\|")


def config_table() -> str:
    """Every setting: its variables, type, default and description (from settings.py)."""
    rows = [
        f"| {' / '.join(f'`{env}`' for env in env_names(name, field))} | `{cell(type_text(field.annotation))}` "
        f"| {cell(default_text(field))} | {cell(field.description or '')} |"
        for name, field in Settings.model_fields.items()
    ]
    return "\n".join(["| variable | type | default | meaning |", "|---|---|---|---|", *rows])


def error_table() -> str:
    """Every code, what it means and whether sending the same request again may help."""
    rows = [f"| `{code.value}` | {MEANING[code]} | {'may help' if code in RETRY_MAY_HELP else 'no'} |"
            for code in Code]
    return "\n".join(["| code | meaning | retry |", "|---|---|---|", *rows])


def _subscribed_topics(decorator: ast.expr) -> list[str]:
    """The topics of a `@router.subscriber(stage.topic(Topic.X), ...)` decorator, else none."""
    if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "subscriber"):
        return []
    return [Topic[node.attr].value for arg in decorator.args for node in ast.walk(arg)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Topic"]


def handlers() -> list[tuple[list[str], str, str]]:
    """(topics, service, handler function) for every subscriber of every service's router,
    read from the source so that this stays as light to import as the settings."""
    found = []
    for service in StageName:
        spec = find_spec(f"services.{service.value}.router")
        assert spec is not None and spec.origin is not None, f"services/{service.value}/router.py"
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                found += [(topics, service.value, node.name)
                          for topics in map(_subscribed_topics, node.decorator_list) if topics]
    return found


def handler_table() -> str:
    """Topic → the function that handles it, so a reader finds it in one look."""
    rows = [f"| {', '.join(f'`{t}`' for t in topics)} | {service} | `services/{service}/router.py` `{name}` |"
            for topics, service, name in handlers()]
    return "\n".join(["| topic | consumed by | handler |", "|---|---|---|", *rows])


#: File (from the repository root) → marker → the function that writes what goes between.
TABLES: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"handler-table": handler_table},
    "docs/configuration.md": {"config-table": config_table},
    "docs/errors.md": {"error-table": error_table},
}


def between(text: str, marker: str) -> tuple[int, int]:
    """Start and end offsets of what stands between a table's two markers."""
    start = text.index(f"<!-- {marker} -->") + len(f"<!-- {marker} -->")
    return start, text.index(f"<!-- /{marker} -->", start)


def splice(text: str, marker: str, table: str) -> str:
    start, end = between(text, marker)
    return f"{text[:start]}\n{table}\n{text[end:]}"


def main() -> None:
    for name, tables in TABLES.items():
        path = ROOT / name
        text = path.read_text()
        for marker, render in tables.items():
            text = splice(text, marker, render())
        path.write_text(text)


if __name__ == "__main__":
    main()
