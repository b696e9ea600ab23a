# The two commands of the README, and the pieces they are made of.
.PHONY: demo test lint typecheck pytest bench

demo:
	@bash scripts/setup.sh
	@.venv/bin/tracegate demo

test:
	@bash scripts/setup.sh --tests
	@$(MAKE) --no-print-directory lint typecheck pytest

lint:
	.venv/bin/ruff check gateway tests bench
	.venv/bin/ruff format --check gateway tests bench

typecheck:
	.venv/bin/mypy

pytest:
	.venv/bin/pytest -q

bench:
	@bash scripts/setup.sh --tests
	.venv/bin/python -m bench
