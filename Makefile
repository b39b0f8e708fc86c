# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck install compile bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat: a plain path entry; the default editable finder adds ~20 ms to every `corral` start
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,ray]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

# Bytecode for the source tree, which the editable install runs from: without it (e.g. under
# PYTHONDONTWRITEBYTECODE) every `corral` start compiles ~45 modules, 0.2 s of CPU. Only changed
# files are compiled again.
compile: $(STAMP)
	$(BIN)/python -m compileall -q core worktrees tui >/dev/null

demo: compile
	$(BIN)/corral demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck compile
	$(BIN)/pytest -n 2 --dist loadgroup

bench: compile
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_worktrees.py
	$(BIN)/python bench/bench_eventlog.py
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_locks.py
	$(BIN)/python bench/bench_conflicts.py
	$(BIN)/python bench/bench_console.py
	$(BIN)/python bench/bench_follow.py
	$(BIN)/python bench/bench_streams.py
	$(BIN)/python bench/bench_mcp.py
	$(BIN)/python bench/bench_sandbox.py
	$(BIN)/python bench/bench_checkpoint.py
	$(BIN)/python bench/bench_ssh.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
