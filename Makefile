# The two commands that matter: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The model pages' build tools (esbuild, Preact) from frontend/package-lock.json: the tests
# rebuild the bundle and compare it with the committed one (tests/unit/ui/test_bundle.py).
FRONTEND_STAMP := frontend/node_modules/.installed

.PHONY: install install-production frontend browser demo demo-keep test lint unit integration e2e clean

# The browser tests drive Debian's Chromium through Playwright, which must never fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
CHROMIUM ?= /usr/bin/chromium

install: $(STAMP)

# Pinned install: constraints.txt fixes every transitive version (see docs/development.md).
# The production extra (Celery provider, celery/kombu/redis, psycopg2, asyncpg) is in it: the
# tests run the production shape natively (tests/integration/test_production.py). The browser extra
# is Playwright (Python) for tests/e2e; its browser is Debian's Chromium (`make browser`).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.*"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,production,browser]'
	# setuptools leaves plugins/airflow_mlops.egg-info beside the package; on sys.path it is a second
	# copy of the metadata, and Airflow then registers the plugin twice (devstack/install_check.py).
	rm -rf plugins/airflow_mlops.egg-info
	touch $(STAMP)

# Debian's chromium and chromium-driver for tests/e2e, installed when missing (apt-get needs root;
# CI runs as root). Playwright is pointed at $(CHROMIUM) (tests/e2e/conftest.py, $$E2E_CHROMIUM).
browser:
	@if [ ! -x $(CHROMIUM) ] || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "tests/e2e need Debian's chromium and chromium-driver: run 'sudo apt-get install chromium chromium-driver'" >&2; \
			exit 1; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi
	@$(CHROMIUM) --version 2>/dev/null | grep -i chromium

frontend: $(FRONTEND_STAMP)

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --ignore-scripts
	touch $(FRONTEND_STAMP)

# Kept for the docs' commands: the default install already has the production extra.
install-production: install

demo: install
	$(BIN)/airflow-mlops demo

demo-keep: install
	$(BIN)/airflow-mlops demo --keep-running

# lint-imports: the layers and the Airflow-free / light serving contracts ([tool.importlinter] in
# pyproject.toml). It finds airflow_mlops on sys.path: PYTHONPATH makes it this checkout's plugins/.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check plugins dags
	$(BIN)/mypy
	PYTHONPATH=$(CURDIR)/plugins $(BIN)/lint-imports --no-cache --no-logo

test: lint frontend browser
	$(BIN)/pytest -p no:cacheprovider

unit: install frontend
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/component tests/dags

integration: install
	$(BIN)/pytest -p no:cacheprovider tests/integration

# Screenshots of every step go to tests/e2e/artifacts/<test>/ (or $$E2E_ARTIFACTS).
e2e: install browser
	$(BIN)/pytest -p no:cacheprovider tests/e2e

clean:
	rm -rf .runtime $(VENV) frontend/node_modules
