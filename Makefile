# Two commands: `make serve` (set up and start the registry) and `make test` (set up and run every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LISTEN ?= 127.0.0.1:5000
DATA_DIR ?= ./data
PYTEST_ARGS ?=

.PHONY: serve test venv dev-deps system-deps lint bench bench-scaleout clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev-deps: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

# Debian packages the tests drive: skopeo and podman (client tests) and the PostgreSQL server
# (scale-out tests), installed only when missing.
system-deps:
	@missing=""; \
	for p in skopeo podman; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing$$missing (client tests will be skipped; run as root to install)"; fi; \
	fi

serve: venv
	$(BIN)/moorage serve --listen $(LISTEN) --data-dir $(DATA_DIR)

# Every test on the default backend (SQLite + filesystem; the storage, metadata and scale-out
# suites start PostgreSQL and SeaweedFS themselves), then the protocol suite again against
# nodes on PostgreSQL + S3.
test: dev-deps system-deps
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	MOORAGE_TEST_BACKEND=pg-s3 $(BIN)/python -m pytest -n 2 tests/integration $(PYTEST_ARGS)
	MOORAGE_TEST_BACKEND=pg-s3-lb $(BIN)/python -m pytest -n 2 tests/integration $(PYTEST_ARGS)

lint: dev-deps
	$(BIN)/ruff check src tests benchmarks

bench: dev-deps
	$(BIN)/python benchmarks/run.py

bench-scaleout: dev-deps system-deps
	$(BIN)/python benchmarks/scaleout.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
