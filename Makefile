# Two commands: `make serve` (set up and start the registry) and `make test` (set up and run every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LISTEN ?= 127.0.0.1:5000
DATA_DIR ?= ./data
PYTEST_ARGS ?=

ARGS ?= --help
LOCK := requirements.lock

.PHONY: serve test test-fast bytecode venv dev-deps system-deps lint bench bench-scaleout clean cli lock

# Debian's python3 lacks `venv` until python3-venv is installed: install it as root, else say so.
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv (needed by $(PYTHON) -m venv)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "error: '$(PYTHON) -m venv' failed: install python3-venv (sudo apt-get install python3-venv)" >&2; exit 1; fi; \
	  $(PYTHON) -m venv $(VENV); }

# Every dependency (runtime and dev) pinned with hashes in $(LOCK); Moorage itself without deps.
venv: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .

dev-deps: venv

# Regenerate $(LOCK) from pyproject.toml, from PyPI only (no local wheel directories).
lock: $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes \
	  --extra dev --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml

# Any `moorage` command: make cli ARGS="user list" (or run .venv/bin/moorage directly).
cli: venv
	$(BIN)/moorage $(ARGS)

# Debian packages the tests drive: skopeo and podman (client tests) and the PostgreSQL server
# (scale-out tests), installed only when missing.
system-deps:
	@missing=""; \
	for p in skopeo podman chromium containerd; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing$$missing (client tests will be skipped; run as root to install)"; fi; \
	fi

serve: venv
	$(BIN)/moorage serve --listen $(LISTEN) --data-dir $(DATA_DIR)

# What three nodes behind a balancer can break that one node cannot: uploads resumed on another
# node, read-after-write, deletes, pagination, concurrent pushes and GC, the outbox and its
# consumers, the cache's single flight, pull-policy caches. The rest of tests/integration (wire
# format, validation, storage, features of one node) already ran on PostgreSQL + S3.
LB_TESTS := $(addprefix tests/integration/test_,$(addsuffix .py,blob_upload checkpoints \
  concurrency durability manifests delete mount referrers tags_catalog outbox webhooks cache \
  pull_policy))

# Every test on the default backend (SQLite + filesystem; the storage, metadata and scale-out
# suites start PostgreSQL and SeaweedFS themselves), then the protocol suite again against
# nodes on PostgreSQL + S3.
# Bytecode written once up front: every test server is a fresh interpreter, and one started with
# PYTHONDONTWRITEBYTECODE set would otherwise compile every module again.
bytecode: venv
	@$(BIN)/python -m compileall -q -j 0 src tests >/dev/null

test: dev-deps system-deps bytecode
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	MOORAGE_TEST_BACKEND=pg-s3 $(BIN)/python -m pytest -n 2 tests/integration \
	  tests/auth/test_hostile_input.py tests/auth/test_namespaces_roles.py $(PYTEST_ARGS)
	MOORAGE_TEST_BACKEND=pg-s3-lb $(BIN)/python -m pytest -n 2 $(LB_TESTS) $(PYTEST_ARGS)

# The fast tier: pure-domain and service-level tests, no servers (seconds, for the edit loop).
test-fast: dev-deps bytecode
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

lint: dev-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: dev-deps
	$(BIN)/python benchmarks/run.py

bench-scaleout: dev-deps system-deps
	$(BIN)/python benchmarks/scaleout.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
