# The two set-up commands of the README: each installs what is missing, then runs.
.PHONY: setup demo test test-all lint

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/aedfw demo

test: setup
	.venv/bin/python -m pytest -n 2 -q

test-all: setup
	.venv/bin/python -m pytest -n 2 -q -m "slow or not slow"

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
