"""`python -m patchtwin` is the `patchtwin` command."""

from patchtwin.cli import main

main()
