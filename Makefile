# The two commands of the README. Both set up a fresh Debian 12 machine first (as root).
.PHONY: demo test test-containers test-compose unit lint bootstrap

bootstrap:
	./scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/patchtwin demo

test: bootstrap lint
	.venv/bin/python -m pytest -q -m "not compose"
	$(MAKE) test-containers
	$(MAKE) test-compose

# The pipeline tests again, with the broker and PostgreSQL as containers (tests/containers.py):
# the whole pipeline, its verdicts, redelivery and bad input.
test-containers:
	PATCHTWIN_TEST_BACKEND=containers .venv/bin/python -m pytest -q tests/integration/test_pipeline.py \
	  tests/integration/test_verdicts.py tests/integration/test_redelivery.py tests/integration/test_bad_input.py

unit:
	.venv/bin/python -m pytest -q tests/unit

# ruff and mypy; vulture for unused code ([tool.vulture], vulture_whitelist.py); shellcheck for
# the bash programs (those run inside twins, the scripts, CI's); perl -c for the in-twin supervisor.
lint:
	.venv/bin/ruff check . && .venv/bin/mypy patchtwin schemas services tests bench
	.venv/bin/vulture
	shellcheck patchtwin/twins/*.sh patchtwin/checks/probe.sh scripts/*.sh .ci/run
	perl -c patchtwin/twins/supervise.pl

# compose.yaml up for real on images built here (minutes: the app image's pip install).
test-compose:
	.venv/bin/python -m pytest -q -m compose tests/integration/test_compose.py
