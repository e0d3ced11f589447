# `make demo` and `make test` each set themselves up on a fresh machine: venv, torch first, then the project.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Ephemeral Prefect needs more than its default 20 s to start on 2 cores; telemetry is offline here.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo test clean ui ui-stop

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo's ephemeral Prefect keeps its database in the project, so it never meets a ~/.prefect
# database migrated by another Prefect version.
demo: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.prefect $(VENV)/bin/cryptorl run --segment 0 --profile demo

# Two pytest-xdist workers, one module each at a time (module-scoped fixtures are built once); torch runs one
# thread per worker. TEST_WORKERS=0 runs the suite in one process.
# The linter, the format check and the type checker come first ([tool.ruff], [tool.mypy] in pyproject.toml).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# A local Prefect server (SQLite, 127.0.0.1:$(UI_PORT)), the `gpu` pool, the deployments of prefect.yaml and
# one worker; PIDs and logs in .ui/. `make ui-stop` stops them by PID.
UI_PORT ?= 4200
ui: $(STAMP)
	UI_PORT=$(UI_PORT) deployments/local-ui.sh start

ui-stop: $(STAMP)
	UI_PORT=$(UI_PORT) deployments/local-ui.sh stop

clean:
	rm -rf artifacts .pytest_cache
