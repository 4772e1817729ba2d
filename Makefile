# The two commands of the README. Both set up a fresh Debian 12 machine first (as root).
.PHONY: demo test unit lint bootstrap

bootstrap:
	./scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/patchtwin demo

test: bootstrap lint
	.venv/bin/python -m pytest -q

unit:
	.venv/bin/python -m pytest -q tests/unit

# ruff and mypy; vulture for unused code ([tool.vulture], vulture_whitelist.py); shellcheck for
# the bash programs (those run inside twins, the scripts, CI's); perl -c for the in-twin supervisor.
lint:
	.venv/bin/ruff check . && .venv/bin/mypy patchtwin schemas services tests bench
	.venv/bin/vulture
	shellcheck patchtwin/twins/*.sh patchtwin/checks/probe.sh scripts/*.sh .ci/run
	perl -c patchtwin/twins/supervise.pl
