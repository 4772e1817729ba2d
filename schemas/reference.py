"""Reference tables for the README, built from the code so the two cannot drift
(`python -m schemas.reference` prints them; a test compares them with README.md)."""

from __future__ import annotations

from schemas.codes import MEANING, Code


def error_table() -> str:
    """Every code and what it means, as a markdown table."""
    rows = [f"| `{code.value}` | {MEANING[code]} |" for code in Code]
    return "\n".join(["| code | meaning |", "|---|---|", *rows])


if __name__ == "__main__":
    print(error_table())
