# The two commands: `make demo` (try it) and `make test` (everything CI runs).
# Both install exactly the versions of requirements.lock (hash-checked); `make lock` renews it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
CONSTRAINTS := requirements-constraints.txt

.PHONY: demo test install lint lock check-lock clean

# uv reads the lock; it is itself pinned (with its hashes) in the lock and installed from PyPI
# with the venv's own pip, so a machine needs only Python, pip and make. Bytecode is compiled at
# install so that no command pays for it (an environment may forbid writing it at run time).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	awk '/^uv==/{p=1} p{print} p&&!/\\$$/{exit}' $(LOCK) > $(VENV)/uv.lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(VENV)/uv.lock.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes --compile-bytecode $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/docworkers demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# Two test processes (pytest-xdist): most tests wait on servers, subprocesses and the model, so
# two of them on 2 cores take 8.6 min instead of 13.9. Each process has its own Redis, model and
# servers (session fixtures); `pytest tests/...` alone still runs in one process.
test: lint
	$(BIN)/pytest -q --numprocesses auto --maxprocesses 4 --dist worksteal

# Renew the lock: after changing a dependency in pyproject.toml, or deliberately to take newer
# releases (then run `make test` before committing the new lock).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --quiet --extra all --extra dev \
	    --constraint $(CONSTRAINTS) --universal --python-version 3.11 \
	    --generate-hashes --no-emit-index-url --upgrade -o $(LOCK)

clean:
	rm -rf $(VENV) .docworkers .pytest_cache .mypy_cache .ruff_cache
