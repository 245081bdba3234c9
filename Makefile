# Two commands: `make serve` (set up and start the registry) and `make test` (set up and run every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LISTEN ?= 127.0.0.1:5000
DATA_DIR ?= ./data
PYTEST_ARGS ?=

.PHONY: serve test venv dev-deps system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev-deps: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

# Debian packages the client tests drive: skopeo and podman (installed only when missing).
system-deps:
	@missing=""; \
	for p in skopeo podman; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing$$missing (client tests will be skipped; run as root to install)"; fi; \
	fi

serve: venv
	$(BIN)/moorage serve --listen $(LISTEN) --data-dir $(DATA_DIR)

test: dev-deps system-deps
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: dev-deps
	$(BIN)/ruff check src tests benchmarks

bench: dev-deps
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
