# One target per task. `make run` and `make test` work on a fresh machine: both install first.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast test-e2e lint format run clean

$(STAMP): pyproject.toml scripts/install
	scripts/install --system --venv $(VENV)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)  ## unit and end-to-end tests
	$(PYTHON) -m pytest

test-fast: $(STAMP)  ## skip the slow tests (smoke training, TensorFlow runtime)
	$(PYTHON) -m pytest -m "not slow"

test-e2e: $(STAMP)  ## only the end-to-end tests of the whole stack (nginx, supervisord, app, auth)
	$(PYTHON) -m pytest tests/e2e

lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: $(STAMP)
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

run: $(STAMP)  ## serve the stack on http://localhost:8080 (installs nginx when missing)
	scripts/run --venv $(VENV)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
