"""Reference tables for the README, built from the code so the two cannot drift
(`python -m schemas.reference` prints them; a test compares them with README.md)."""

from __future__ import annotations

from schemas.codes import MEANING, RETRY_MAY_HELP, Code


def error_table() -> str:
    """Every code, what it means and whether sending the same request again may help."""
    rows = [f"| `{code.value}` | {MEANING[code]} | {'may help' if code in RETRY_MAY_HELP else 'no'} |"
            for code in Code]
    return "\n".join(["| code | meaning | retry |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(error_table())
