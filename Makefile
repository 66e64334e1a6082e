# One target per task. `make run` and `make test` work on a fresh machine: both install first.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast test-e2e test-reliability lint format run dev-cert bench clean

$(STAMP): pyproject.toml scripts/install
	scripts/install --system --venv $(VENV)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)  ## unit and end-to-end tests (not the hardening suite)
	$(PYTHON) -m pytest -m "not reliability"

test-fast: $(STAMP)  ## skip the slow tests (smoke training, TensorFlow runtime)
	$(PYTHON) -m pytest -m "not slow and not reliability"

test-e2e: $(STAMP)  ## only the end-to-end tests of the whole stack (nginx, supervisord, app, auth)
	$(PYTHON) -m pytest tests/e2e

# RELIABILITY_SOAK_SECONDS: length of the soak (default 600; .ci/run sets 60).
test-reliability: $(STAMP)  ## fuzzing, hostile inputs, faults and soak (docs/reliability.md)
	$(PYTHON) -m pytest tests/reliability -m reliability

lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: $(STAMP)
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

run: $(STAMP)  ## serve the stack on http://localhost:8080 (installs nginx when missing)
	scripts/run --venv $(VENV)

# DEV_CERT_ARGS: e.g. --name myhost --reader 10001 (scripts/dev-cert --help).
dev-cert:  ## self-signed development CA + certificate for HTTPS in var/tls/ (docs/gateway.md, TLS)
	scripts/dev-cert $(DEV_CERT_ARGS)

bench: $(STAMP)  ## the whole-stack benchmark (10-15 min); rewrites its section of docs/benchmarks.md
	command -v wrk >/dev/null 2>&1 || scripts/install --bench --venv $(VENV)
	$(PYTHON) bench/stack.py --markdown

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
