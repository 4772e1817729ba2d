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

lint:
	.venv/bin/ruff check . && .venv/bin/mypy patchtwin schemas services tests bench
