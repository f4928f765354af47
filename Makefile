# fuseguard — two commands: `make demo` runs a whole simulated site, `make test` runs every check.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck imports pytest bench services browser clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev,broker]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(VENV)/bin/fuseguard demo $(DEMO_ARGS)

services:
	@bash scripts/ensure-services.sh

# The browser tests (tests/web) drive Debian's Chromium; Playwright never downloads a browser.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 \
	  && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } \
	  || echo "browser: no chromium (Debian package 'chromium'); tests/web will say so"

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP_DEV)
	$(VENV)/bin/mypy --strict src

imports: $(STAMP_DEV)
	$(VENV)/bin/lint-imports

# The suite mostly waits (real-time control loops, subprocesses, a browser): several pytest-xdist
# workers share the 2 cores. A module with a module-scoped fixture stays in one worker and an
# `exclusive` test runs alone (tests/conftest.py). PYTEST_WORKERS=0 runs it in one process.
# Bytecode is cached under the venv even where the environment says PYTHONDONTWRITEBYTECODE (this
# machine and CI do): otherwise every worker and every `fuseguard` subprocess of the tests compiles
# the sources again, and pytest rewrites every test module's asserts again (half of collection).
PYTEST_WORKERS ?= 4
PYTEST_ENV = PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache
# --max-worker-restart=0: a worker that dies (a test past its timeout ends its worker, see
# pyproject.toml) is not replaced; with --dist loadgroup a replaced worker was never given work
# nor told to stop, and the run hung (pytest-xdist 3.8, reproduced). The run ends red instead.
# One collection first (beside mypy) fills that cache, so that the workers, which all collect at
# once, read it instead of each rewriting every test module on a fresh clone.
pytest: $(STAMP_DEV) services browser
	@$(PYTEST_ENV) $(VENV)/bin/pytest -p no:cacheprovider --collect-only -q >/dev/null 2>&1 || true
	$(PYTEST_ENV) $(VENV)/bin/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup \
	  --max-worker-restart=0 --durations=25

# mypy (no cache on a fresh clone: 30-60 s of one core) runs beside pytest, whose workers mostly
# wait; `make test` fails when either fails (make -j2 waits for both).
test: lint imports
	@$(MAKE) --no-print-directory -j2 typecheck pytest

bench: $(STAMP_DEV) services browser
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
