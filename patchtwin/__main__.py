"""`python -m patchtwin` is the `patchtwin` command."""

from patchtwin.cli.commands import main

main()
