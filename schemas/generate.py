"""Writes the JSON Schema of every event to schemas/json/ (`python -m schemas.generate`).

The AsyncAPI document (schemas/asyncapi.json) needs the services' routers, which this package
never imports: `python -m patchtwin.cli.asyncapi` writes both."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import EVENTS

JSON_DIR = Path(__file__).parent / "json"


def render() -> dict[str, str]:
    """File name → JSON Schema text, for every event."""
    return {
        f"{event.topic.value}.schema.json": json.dumps(
            event.model_json_schema(mode="validation"), indent=2, sort_keys=True
        )
        + "\n"
        for event in EVENTS
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (JSON_DIR / name).write_text(text)


if __name__ == "__main__":
    main()
