# cyclerflow: two commands for a newcomer: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt

.PHONY: demo test test-fast bench lint format install browser postgres clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## make demo: simulated instruments -> HDF5 -> analysis -> HTML report (no server, no hardware)
demo: $(STAMP)
	$(BIN)/cyclerflow demo --out demo-out

## headless Chromium for the report tests (Debian's package; needs root or sudo)
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  ( (command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && S=sudo || S=; \
	    $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: browser tests will skip" )

## PostgreSQL for the lab-database tests (Debian's package; the tests start their own server)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  ( (command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && S=sudo || S=; \
	    $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	    || echo "postgresql could not be installed: the PostgreSQL tests will skip" )

## make test: the whole test suite
test: $(STAMP) browser postgres
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not flows and not browser"

## make bench: every benchmark with its peer libraries, in venvs of their own
BENCH := .venv-bench
CELLPY := .venv-cellpy
$(BENCH)/.installed: pyproject.toml $(CONSTRAINTS) benchmarks/requirements-peers.txt
	test -x $(BENCH)/bin/python || $(PY) -m venv $(BENCH)
	$(BENCH)/bin/pip install -q -c $(CONSTRAINTS) -e '.[all,dev]' -r benchmarks/requirements-peers.txt
	touch $@
$(CELLPY)/.installed: benchmarks/requirements-cellpy.txt
	test -x $(CELLPY)/bin/python || $(PY) -m venv $(CELLPY)
	$(CELLPY)/bin/pip install -q -r benchmarks/requirements-cellpy.txt || echo "cellpy could not be installed: its ratio is not measured"
	touch $@

bench: $(BENCH)/.installed $(CELLPY)/.installed
	@for b in benchmarks/*.py; do echo "== $$b"; \
	  if [ $$b = benchmarks/cycling.py ]; then $(BENCH)/bin/python $$b --cellpy-python $(CELLPY)/bin/python || exit 1; \
	  else $(BENCH)/bin/python $$b || exit 1; fi; done

lint: $(STAMP)
	$(BIN)/ruff format --check src drivers flows tests benchmarks
	$(BIN)/ruff check src drivers flows tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src drivers flows tests benchmarks
	$(BIN)/ruff check --fix src drivers flows tests benchmarks

clean:
	rm -rf $(VENV) .venv-bench .venv-cellpy demo-out build dist .pytest_cache
