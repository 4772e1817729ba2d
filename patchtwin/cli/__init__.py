"""The composition root: the only part of patchtwin that knows every service.

`app` assembles services into a process, `commands` is the `patchtwin` command line, and
`client`, `watch`, `demo`, `embedded` and `asyncapi` are what those commands use."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    """The `patchtwin` command (imported late, so `patchtwin.cli.client` stays light)."""
    from patchtwin.cli.commands import main as run

    run(argv)
